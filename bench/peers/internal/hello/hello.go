// Package hello is the handler every benchmark peer serves, written the
// same way as baton's examples/http so that a throughput difference is the
// library's, not the handler's: GET / answers the pid and generation of the
// process (also in the X-Pid and X-Generation headers), and ?ms=N sleeps N
// milliseconds first (at most MaxSleep).
package hello

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"
)

// MaxSleep bounds ?ms=N.
const MaxSleep = 10 * time.Second

// Handler returns the handler for a process of the given generation.
func Handler(generation int) http.Handler {
	pid, gen := strconv.Itoa(os.Getpid()), strconv.Itoa(generation)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ms, err := strconv.Atoi(r.URL.Query().Get("ms")); err == nil && ms > 0 {
			time.Sleep(min(time.Duration(ms)*time.Millisecond, MaxSleep))
		}
		w.Header().Set("X-Pid", pid)
		w.Header().Set("X-Generation", gen)
		fmt.Fprintf(w, "pid %s generation %s\n", pid, gen)
	})
}
