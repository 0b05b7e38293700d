// Package front is the HTTP front of `baton run --front`: baton, which
// holds the public sockets, terminates the client connections itself
// (HTTP/1.1, and HTTP/2 without TLS with prior knowledge) and forwards each
// request, through net/http/httputil's ReverseProxy, to one generation (one
// CMD) over a private unix socket that the CMD received at its LISTEN_FDS
// fd under the public socket's name. The CMD does not change: it serves
// the socket it is given, as it would under systemd.
//
// The model: every generation has its private sockets (Sockets), made
// before its CMD starts, in a private directory of mode 0700. A generation
// is routed (gets new requests) while its CMD serves: Route and Unroute
// follow the supervisor's serving state. Requests are spread round robin
// over the routed generations (the workers of a pool). At an upgrade the
// new generation is routed once it is ready and has accepted a probe
// connection (Check); the old one is unrouted and quiesced (Quiesce): its
// requests in flight, WebSocket connections and event streams included,
// end, and only then does the front close its connections to the CMD,
// all idle, and the CMD gets its SIGTERM. A CMD's own drain therefore
// never closes a connection the front is sending on, and a CMD that exits
// at SIGTERM has nothing left to lose. The client connections stay open
// across upgrades: the proxy removes a CMD's "Connection: close".
//
//	baton run --front --listen http=tcp://:8080 -- /usr/bin/myserver
//
//	[Service]
//	Type=notify
//	ExecStart=/usr/bin/baton run --front --listen http=tcp://:8080 -- /usr/bin/myserver
//	ExecReload=/usr/bin/baton reload --pid $MAINPID
//	KillMode=mixed
//
// Lifecycle of a generation n, as the supervisor drives it:
//
//	Sockets(n)   private sockets made; the CMD starts with them
//	Check(n)     the CMD accepts on them (else its start fails)
//	Route(n)     serving: new requests go to it
//	Unroute(n)   standby or draining: no new request
//	Quiesce(n)   before SIGTERM: requests end (or are cut at the deadline), connections closed
//	Release(n)   the CMD exited: sockets closed and removed
//
// A request that finds no routed generation waits up to Config.Wait for
// one, then gets 503 Service Unavailable (counted in Stats.Unavailable and
// logged), never a reset. Shutdown (baton's own stop) answers with
// "Connection: close" for LameDuck, then shuts the servers down, waiting
// for the requests in flight, before the CMDs get their signal.
//
// NOTES
//   - The proxy's costs are cut where ReverseProxy's defaults are dear:
//     a transport of its own per private socket (transport.go) that
//     writes each request and reads its response on the goroutine
//     serving the client, with no goroutine hand-off, and keeps up to
//     1024 idle connections; a pool of copy buffers; no gzip of its own;
//     no proxy from the environment. Upgrade requests go through
//     net/http's Transport, which hands the connection over.
//   - The CMD sees the client's Host header, and X-Forwarded-For,
//     X-Forwarded-Host and X-Forwarded-Proto set by the front; its
//     RemoteAddr is the unix socket's. TLS is not terminated here.
//   - Requests reach the CMD as HTTP/1.1, also those of HTTP/2 clients;
//     a gRPC server, which needs HTTP/2 to the end, does not fit.
//   - Check's probe is a connection closed without a request, as a load
//     balancer's TCP check: a CMD that logs every connection logs it.
//   - An upgraded connection (WebSocket) keeps its generation from its
//     SIGTERM until it ends or the drain deadline cuts it: Quiesce waits
//     for it, bounded by the context the supervisor gives (--drain), and
//     the CMD's SIGTERM comes after; it then has --drain again.
//   - The private sockets are unix stream sockets in blocking mode, as
//     systemd hands sockets over; baton never accepts on them.
package front
