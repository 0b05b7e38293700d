package demoserver

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/batonhq/baton/handoff"
)

// Run serves until the process is stopped (SIGTERM) or hands over to its
// successor, with the flags args (-listen ADDR), logging to log.
func Run(args []string, log io.Writer) error {
	fs := flag.NewFlagSet("demo server", flag.ContinueOnError)
	fs.SetOutput(log)
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on when not given a socket")
	if err := fs.Parse(args); err != nil {
		return err
	}
	up, err := handoff.New(handoff.Config{Logger: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		return err
	}
	defer up.Close()
	ln, err := up.Listen("http", "tcp", *listen)
	if err != nil {
		return err
	}
	pid, gen := strconv.Itoa(os.Getpid()), strconv.Itoa(up.Generation())
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Pid", pid)
			w.Header().Set("X-Generation", gen)
			fmt.Fprintf(w, "pid %s generation %s\n", pid, gen)
		}),
	}
	up.Serve(handoff.HTTP(srv, ln))
	if err := up.Ready(); err != nil {
		return err
	}
	return up.Wait()
}
