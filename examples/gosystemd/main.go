// Command gosystemd is an HTTP server written as a Go user writes one with
// go-systemd, knowing nothing of baton or handoff: its socket from
// go-systemd's activation (the first socket passed, LISTEN_FDS), READY=1
// and STOPPING=1 through go-systemd's daemon, and on SIGTERM a drain that
// loses no request behind a keep-alive proxy: package drain instead of
// srv.Shutdown (golang/go#65802). Under `baton run` (or systemd with a
// socket unit) every upgrade or restart is then free of errors, with or
// without a proxy that reuses its upstream connections.
//
//	GET or POST /      answers with the pid (body and X-Pid); a POST's body is read first
//	GET /?ms=N         sleeps N milliseconds first (at most 10 s)
//
// -listen ADDR when started by hand (no LISTEN_FDS).
// -stop-delay D: after SIGTERM, a lame duck for D before the drain: it goes
// on accepting and answering, every response says "Connection: close" and
// idle connections close, so that proxies and Kubernetes endpoints move
// away (the preStop sleep done right).
// -drain D bounds the drain (then what is left is closed).
// -plain shuts down with net/http's srv.Shutdown instead (after the same
// stop delay, serving as usual meanwhile): the variant that loses requests
// behind a keep-alive proxy, kept to show the difference.
//
//	baton run --listen http=tcp://127.0.0.1:8080 -- gosystemd -stop-delay 100ms
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/batonhq/baton/drain"
)

// options are the command's flags.
type options struct {
	listen    string
	stopDelay time.Duration
	drain     time.Duration
	plain     bool
}

func main() {
	var o options
	flag.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to listen on when not socket-activated")
	flag.DurationVar(&o.stopDelay, "stop-delay", 0, "after SIGTERM, a lame duck this long before the drain")
	flag.DurationVar(&o.drain, "drain", 25*time.Second, "the drain's deadline")
	flag.BoolVar(&o.plain, "plain", false, "shut down with net/http's srv.Shutdown (loses requests behind a keep-alive proxy)")
	flag.Parse()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	if err := run(o, stop); err != nil {
		fmt.Fprintln(os.Stderr, "gosystemd:", err)
		os.Exit(1)
	}
}

// listener returns the first socket passed (LISTEN_FDS), else one on
// o.listen.
func listener(o options) (net.Listener, error) {
	lns, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("activation: %w", err)
	}
	for _, ln := range lns {
		if ln != nil {
			return ln, nil
		}
	}
	return net.Listen("tcp", o.listen)
}

func handler() http.Handler {
	pid := strconv.Itoa(os.Getpid())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if ms, err := strconv.Atoi(r.URL.Query().Get("ms")); err == nil && ms > 0 {
			select {
			case <-time.After(min(time.Duration(ms)*time.Millisecond, 10*time.Second)):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("X-Pid", pid)
		_, _ = io.WriteString(w, pid+"\n")
	})
}

// run serves until a signal arrives on stop, then drains and returns.
func run(o options, stop <-chan os.Signal) error {
	ln, err := listener(o)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler(), ReadHeaderTimeout: 10 * time.Second}
	var d *drain.Server
	served := make(chan error, 1)
	if o.plain {
		go func() { served <- srv.Serve(ln) }()
	} else {
		d = drain.New(srv)
		go func() { served <- d.Serve(ln) }()
	}
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	select {
	case <-stop:
	case err := <-served:
		return err
	}
	// STOPPING=1 at once: the manager knows, the process goes on serving
	// for the stop delay.
	if _, err := daemon.SdNotify(false, daemon.SdNotifyStopping); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	if d != nil && o.stopDelay > 0 {
		d.EnterLameDuck()
	}
	select {
	case <-time.After(o.stopDelay):
	case <-stop: // a second signal ends the delay
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.drain)
	defer cancel()
	if d != nil {
		err = d.Shutdown(ctx)
	} else {
		err = srv.Shutdown(ctx)
	}
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
