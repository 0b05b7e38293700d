package hello

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

// EventPeriod is the pause between two events of an /events stream.
const EventPeriod = 100 * time.Millisecond

// Events returns the GET /events handler, written like the one of baton's
// examples/http: a text/event-stream response (chunked) with one event
// every EventPeriod whose data is the pid of the process, the first at
// once. It returns, ending the stream cleanly with the chunked end of body,
// when the channel draining(r) gives is closed (a nil channel never is) or
// when the client goes away.
func Events(draining func(r *http.Request) <-chan struct{}) http.Handler {
	pid := os.Getpid()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		flusher, ok := w.(http.Flusher)
		if !ok {
			http.Error(w, "streaming unsupported", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Pid", fmt.Sprint(pid))
		drain := draining(r)
		tick := time.NewTicker(EventPeriod)
		defer tick.Stop()
		for {
			if _, err := fmt.Fprintf(w, "data: %d\n\n", pid); err != nil {
				return
			}
			flusher.Flush()
			select {
			case <-r.Context().Done():
				return
			case <-drain:
				return
			case <-tick.C:
			}
		}
	})
}
