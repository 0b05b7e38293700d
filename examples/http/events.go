package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/batonhq/baton/handoff"
)

// eventInterval is the pace of the events of GET /events.
const eventInterval = 100 * time.Millisecond

// events serves GET /events: a Server-Sent Events stream with an event at
// once and then one every eventInterval, whose data is the pid. The stream
// ends when this generation starts draining (handoff.Draining) or the
// client goes away: the handler returns, so the body ends properly (the
// last chunk in HTTP/1.1, END_STREAM in HTTP/2) and the client, seeing a
// clean end, opens a new stream, which the successor serves.
func events(pid string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Pid", pid)
		rc := http.NewResponseController(w)
		draining := handoff.Draining(r.Context())
		tick := time.NewTicker(eventInterval)
		defer tick.Stop()
		for {
			if _, err := fmt.Fprintf(w, "data: %s\n\n", pid); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			select {
			case <-tick.C:
			case <-draining:
				return
			case <-r.Context().Done():
				return
			}
		}
	}
}
