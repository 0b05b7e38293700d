// Package load is an HTTP/1.1 load generator that speaks the protocol itself
// over net.Conn, so that nothing retries a failed request behind its back:
// every request sent is either answered or counted as a failure of exactly
// one class.
//
// Model: C clients run for a bounded duration. Each client sends one request
// at a time, either over a kept-alive connection (KeepAlive: the connection
// is reused until the server closes it, says "Connection: close", or a
// request fails) or over a fresh connection per request (NewConn: the request
// carries "Connection: close"). A share of the requests asks the server to
// sleep (`?ms=N`). Every request becomes a Record (start, end, class, and the
// X-Pid / X-Generation headers of the answer), so latency percentiles and
// overlaps with upgrades are computed after the run, not during it.
//
// Failure classes (Classify):
//   - refused: connect got ECONNREFUSED (nobody listening);
//   - reset: ECONNRESET or EPIPE while writing or reading;
//   - eof-reused: the server closed a reused keep-alive connection before
//     sending a byte of the answer (the race of an idle-connection close);
//   - eof-new: the same on a fresh connection ("empty reply from server");
//   - timeout: the per-request deadline passed;
//   - status: an answer other than 200;
//   - other: anything else (truncated answers, malformed headers).
//
// Traps:
//   - The generator and the server share the machine: a closed loop with no
//     think time measures the pair, so compare peers only within one run.
//   - A request is never retried, also not a keep-alive request that hit a
//     connection the server had just closed: that is exactly the failure the
//     benchmark exists to count.
package load
