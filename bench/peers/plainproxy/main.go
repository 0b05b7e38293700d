// Command plainproxy is net/http/httputil's ReverseProxy with its
// defaults, in front of a server on a unix socket: what `baton run
// --front` would cost untuned (http.DefaultTransport's settings, 2 idle
// connections per host, no buffer pool), for bench/front-run.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "`address` to serve on")
	upstream := flag.String("upstream", "", "unix socket `path` of the server")
	flag.Parse()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", *upstream)
	}
	p := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: "upstream"})
	p.Transport = tr
	if err := http.ListenAndServe(*listen, p); err != nil {
		fmt.Fprintln(os.Stderr, "plainproxy:", err)
		os.Exit(1)
	}
}
