// Package rawhttp is the HTTP/1.1 client of baton's load drivers (baton
// demo, e2e's load in its boxes, and the tests that count failed requests
// across upgrades). It writes requests and reads responses itself over one
// net.Conn, so that no failure is retried unseen: net/http's Transport
// replays a GET whose reused connection was closed before any response
// byte, which would hide exactly the failures being counted.
//
// Client makes one request at a time; Load runs clients that never pause,
// counts what they got, and says which process (X-Pid) answered when.
//
// Traps:
//   - Every failure closes the connection, a non-200 answer too: the next
//     request opens a new one, so one failure never hides behind another
//     on a connection in an unknown state.
//   - Client.Timeout bounds the whole request from its start, the dial
//     included: a slow dial leaves less time for the answer.
package rawhttp
