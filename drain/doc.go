// Package drain shuts an *http.Server down without losing a request, for
// any Go server: one restarted by baton, by package handoff, by systemd,
// or terminated by Kubernetes.
//
// net/http's Server.Shutdown closes every idle keep-alive connection at
// once. Behind a proxy that keeps its upstream connections alive
// (HAProxy, nginx with keepalive, a Kubernetes ingress or service mesh)
// the proxy may have just sent a request on one of them: the request is
// lost, and the proxy answers 502 or retries it only when it may
// (golang/go#65802). Package drain is the answer to that issue: it
// closes a keep-alive connection only when nothing is on its wire, and
// first tells every client, in the responses it still sends, to go
// elsewhere.
//
// # Model
//
// A Server serves a copy of an *http.Server's configuration on one or more
// listeners (Serve, ListenAndServe) and is in one of three states:
//
//   - serving: as net/http serves;
//   - lame duck (EnterLameDuck, undone by LeaveLameDuck): still accepting
//     and answering, but every response whose header is written says
//     "Connection: close" (on HTTP/2, the connection gets GOAWAY), and a
//     keep-alive connection idle for IdleGrace with no request bytes on
//     its way is closed; nothing else changes;
//   - draining (Shutdown, once, final): the lame duck's rules, plus: the
//     listeners are closed, Draining(ctx) is closed, srv's
//     RegisterOnShutdown functions run (once per Server), hijacked
//     connections registered with Hijacked are told to go away, a
//     connection that has not sent its first request is kept until it
//     does or until srv.ReadHeaderTimeout (NewConnGrace) passes, requests
//     still running after StreamGrace have their contexts cancelled, and
//     at ctx's deadline whatever is left is closed and Shutdown returns
//     ctx.Err(). Without a deadline it returns when the last connection
//     is gone.
//
// With many connections (SpreadWindow), the "Connection: close" and idle
// closes come to each connection in turn over a window, so that the
// clients do not all reconnect at the same instant. TLS is served from
// srv.TLSConfig on a plain listener, as srv.ServeTLS would; HTTP/2 and
// h2c are drained with GOAWAY. srv.SetKeepAlivesEnabled(false) makes
// every response say "Connection: close", as with net/http.
//
// # Without handoff
//
//	srv := &http.Server{Addr: ":8080", Handler: mux}
//	d := drain.New(srv)
//	go func() {
//		if err := d.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
//			log.Fatal(err)
//		}
//	}()
//	<-sigterm
//	d.EnterLameDuck()           // optional: a stop delay, see below
//	time.Sleep(stopDelay)
//	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
//	defer cancel()
//	err := d.Shutdown(ctx)      // instead of srv.Shutdown
//
// A handler that streams (Server-Sent Events, long polling) selects on
// Draining(r.Context()) and returns; one that hijacks the connection (a
// WebSocket) calls Hijacked to be told when to send its close frame.
//
// # With handoff
//
// handoff.HTTP(srv, ln) serves srv through a Server; the Upgrader calls its
// Shutdown when the generation hands over or stops, and handoff.Draining
// and handoff.Hijacked are this package's functions.
//
// # Kubernetes, and any stop delay
//
// When a pod is deleted, the kubelet sends SIGTERM while the endpoints
// controller, kube-proxy and the ingress still route to the pod for a few
// seconds. A server that stops accepting at SIGTERM refuses those
// connections; one that waits (a preStop sleep, or a stop delay in the
// program) but keeps its keep-alive connections open gives the proxies no
// reason to move. The lame duck is the stop delay done right: on SIGTERM
// call EnterLameDuck, keep serving for the delay (new connections are
// still accepted and answered, with "Connection: close"), then Shutdown
// under a deadline below terminationGracePeriodSeconds:
//
//	terminationGracePeriodSeconds: 40   # stop delay + drain deadline + margin
//
// # Traps
//
//   - The Server serves a copy of srv: set every field of srv before New
//     and change none afterwards; call Shutdown on the Server, never on
//     srv (srv.Shutdown would only run the hooks). Handlers find the copy
//     under http.ServerContextKey.
//   - Shutdown ends the Server for good; the lame duck is the reversible
//     state. RegisterOnShutdown functions run at Shutdown only.
//   - The lame duck closes no listener: to stop accepting, close or stop
//     accepting on the listener yourself (handoff pauses its own).
//   - A client that sends a request at the very moment an idle
//     connection is closed sees it fail, as with any keep-alive timeout:
//     the drain closes only connections idle for IdleGrace with nothing
//     on the wire, which a proxy that reuses its connections at once
//     never hits. Outside the drain, srv.IdleTimeout closes as net/http
//     does: keep it above the proxy's own upstream idle timeout.
//   - Without a deadline on Shutdown's ctx, StreamGrace never comes unless
//     set, and a stream that never ends keeps Shutdown waiting.
//   - A hijacked connection is waited for only while its handler runs or
//     while registered with Hijacked: call done when it is closed.
package drain
