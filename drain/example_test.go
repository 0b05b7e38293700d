package drain_test

import (
	"context"
	"errors"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/batonhq/baton/drain"
)

// A server that drains on SIGTERM instead of calling srv.Shutdown, after a
// lame duck of 5 s (Kubernetes endpoints and proxies move away meanwhile).
func Example() {
	srv := &http.Server{Addr: "127.0.0.1:8080", Handler: http.NotFoundHandler()}
	d := drain.New(srv)
	served := make(chan error, 1)
	go func() { served <- d.ListenAndServe() }()

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	<-stop
	d.EnterLameDuck()
	time.Sleep(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		log.Print("drain: ", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		log.Print(err)
	}
}

// A streaming handler ends its response when the drain starts, so that its
// client reconnects elsewhere.
func ExampleDraining() {
	http.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-drain.Draining(r.Context()):
				return
			case <-r.Context().Done():
				return
			case <-tick.C:
				_, _ = w.Write([]byte("data: tick\n\n"))
				_ = http.NewResponseController(w).Flush()
			}
		}
	})
}
