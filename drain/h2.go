package drain

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
)

// HTTP/2 is drained with GOAWAY, and net/http sends it only from a
// Server.Shutdown hook (RegisterOnShutdown), which cannot run on the
// serving server before its last request without dropping requests that
// are read but not yet served (golang/go#65802). So the server the user
// configured is not the one that serves: New serves a copy of it, and
// keeps two servers that serve nothing, only to run shutdown hooks: the
// user's (its RegisterOnShutdown functions, run once when the drain
// starts) and one on which net/http's HTTP/2 is configured, as Serve or
// ServeTLS would configure it on the user's, whose TLSNextProto the copy
// uses. Shutting that one down serves and closes nothing; its hook sends
// GOAWAY (NO_ERROR, the last stream processed) to every HTTP/2 connection
// not yet told: the client opens no new stream on it, the open streams
// finish, and the connection closes by itself. It can run again for a
// connection that starts serving HTTP/2 after it ran. (Connections with
// requests are told earlier, one by one, by their responses' "Connection:
// close"; see Shutdown.)

// errNoListener is what noListener's Accept returns.
var errNoListener = errors.New("drain: no listener")

// noListener accepts nothing. Serving it makes net/http configure HTTP/2
// on the server (it does so before its first Accept) and return at once.
type noListener struct{}

func (noListener) Accept() (net.Conn, error) { return nil, errNoListener }
func (noListener) Close() error              { return nil }
func (noListener) Addr() net.Addr            { return &net.TCPAddr{} }

// setupHTTP2 configures net/http's HTTP/2 for srv exactly as srv.Serve
// (or srv.ServeTLS, when srv.TLSConfig is set) would, but on a server of
// its own that it returns, whose TLSNextProto the serving copy uses;
// srv.TLSConfig gets "h2" and "http/1.1" in NextProtos as with ServeTLS.
// It returns nil when srv.TLSNextProto is set already (the user configured
// HTTP/2 with x/net/http2.ConfigureServer, whose hook is srv's own, or
// disabled it) or when HTTP/2 is off. Configuration errors (an HTTP/2
// cipher suite missing) are reported by the serving copy's Serve.
func setupHTTP2(srv *http.Server) *http.Server {
	if srv.TLSNextProto != nil {
		return nil
	}
	h2 := &http.Server{
		TLSConfig:   srv.TLSConfig,
		ReadTimeout: srv.ReadTimeout,
		IdleTimeout: srv.IdleTimeout,
		HTTP2:       srv.HTTP2,
		Protocols:   srv.Protocols,
		ErrorLog:    srv.ErrorLog,
	}
	if srv.TLSConfig != nil {
		_ = h2.ServeTLS(noListener{}, "", "")
	} else {
		_ = h2.Serve(noListener{})
	}
	if _, ok := h2.TLSNextProto["h2"]; !ok {
		return nil
	}
	return h2
}

// tlsNextProto wraps srv's HTTP/2 entry points so that the drain knows
// which connections are HTTP/2.
func (s *Server) tlsNextProto(m map[string]func(*http.Server, *tls.Conn, http.Handler)) map[string]func(*http.Server, *tls.Conn, http.Handler) {
	if m == nil {
		return nil
	}
	out := make(map[string]func(*http.Server, *tls.Conn, http.Handler), len(m))
	for proto, fn := range m {
		out[proto] = func(hs *http.Server, c *tls.Conn, h http.Handler) {
			var key net.Conn = c
			if proto == "unencrypted_http2" {
				// h2c: net/http tracks the plain connection, which it
				// passes in a *tls.Conn of its own.
				key = c.NetConn()
				if u, ok := key.(interface{ UnencryptedNetConn() net.Conn }); ok {
					key = u.UnencryptedNetConn()
				}
			}
			if v, ok := s.conns.Load(key); ok {
				v.(*connInfo).h2.Store(true)
			}
			if s.closing.Load() {
				// Served after the GOAWAY went out: it needs one too.
				s.lateH2.Store(true)
				s.poke()
			}
			fn(hs, c, h)
		}
	}
	return out
}

// goAwayH2 sends GOAWAY to every HTTP/2 connection not yet told; when the
// user configured HTTP/2 (x/net/http2), the user's hooks do, once.
func (s *Server) goAwayH2() {
	if s.h2 != nil {
		// It serves nothing: its Shutdown runs the hook and returns.
		_ = s.h2.Shutdown(context.Background())
	}
}
