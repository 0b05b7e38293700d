// Package hello is the handler every benchmark peer serves, the same as
// baton's examples/http: GET / answers the pid and generation of the
// process (also in the X-Pid and X-Generation headers), and ?ms=N sleeps N
// milliseconds first (cut short when the client goes away).
package hello

import (
	"net/http"
	"os"
	"strconv"
	"time"
)

// MaxSleep bounds ?ms=N.
const MaxSleep = 60 * time.Second

// Handler returns the handler for a process of the given generation.
func Handler(generation int) http.Handler {
	pid := strconv.Itoa(os.Getpid())
	gen := strconv.Itoa(generation)
	body := []byte("pid " + pid + " generation " + gen + "\n")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ms := r.URL.Query().Get("ms"); ms != "" {
			n, err := strconv.Atoi(ms)
			if err != nil || n < 0 || time.Duration(n)*time.Millisecond > MaxSleep {
				http.Error(w, "bad ms", http.StatusBadRequest)
				return
			}
			t := time.NewTimer(time.Duration(n) * time.Millisecond)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		h := w.Header()
		h["X-Pid"] = []string{pid}
		h["X-Generation"] = []string{gen}
		h["Content-Type"] = []string{"text/plain; charset=utf-8"}
		_, _ = w.Write(body) // a write error means the client left
	})
}
