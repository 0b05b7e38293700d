// Command tableflip is the benchmark's tableflip peer: the shared handler
// served the way tableflip's README and its net/http example recommend,
// without improvements. SIGHUP calls upg.Upgrade(); after upg.Ready() the
// process waits on <-upg.Exit(), then calls Shutdown with no deadline of its
// own, guarded by a 30 s timer that exits the process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"

	"github.com/batonhq/baton/bench/peers/internal/hello"
)

func main() {
	listenAddr := flag.String("listen", "localhost:8080", "`Address` to listen on")
	pidFile := flag.String("pid-file", "", "`Path` to pid file")
	flag.Parse()
	log.SetPrefix(fmt.Sprintf("%d ", os.Getpid()))

	upg, err := tableflip.New(tableflip.Options{PIDFile: *pidFile})
	if err != nil {
		log.Fatalln("tableflip:", err)
	}
	defer upg.Stop()

	// Do an upgrade on SIGHUP.
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGHUP)
		for range sig {
			if err := upg.Upgrade(); err != nil {
				log.Println("Upgrade failed:", err)
			}
		}
	}()

	// Listen must be called before Ready.
	ln, err := upg.Listen("tcp", *listenAddr)
	if err != nil {
		log.Fatalln("Can't listen:", err)
	}

	server := http.Server{Handler: hello.Handler(0)}
	go func() {
		err := server.Serve(ln)
		if !errors.Is(err, http.ErrServerClosed) {
			log.Println("HTTP server:", err)
		}
	}()

	if err := upg.Ready(); err != nil {
		log.Fatalln("Ready:", err)
	}
	<-upg.Exit()

	// A deadline on exiting after upg.Exit() is closed: no new upgrade can
	// be performed while the parent has not exited.
	time.AfterFunc(30*time.Second, func() {
		log.Println("Graceful shutdown timed out")
		os.Exit(1)
	})

	// Wait for connections to drain.
	_ = server.Shutdown(context.Background())
}
