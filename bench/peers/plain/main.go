// Command plain is the benchmark's baseline peer: the shared handler on a
// plain net/http server that binds its own socket and, on SIGTERM or
// SIGINT, calls Shutdown with a deadline. The naive stop-and-start peer is
// this binary killed and started again.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/batonhq/baton/bench/peers/internal/hello"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "plain:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:8080", "`address` to listen on")
	drain := flag.Duration("drain", 10*time.Second, "Shutdown deadline on SIGTERM")
	flag.Parse()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	return hello.Serve(ln, *drain, nil)
}
