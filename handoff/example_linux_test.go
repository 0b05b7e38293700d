package handoff_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/batonhq/baton/handoff"
)

// A server as a user writes it: sockets by name, an HTTP server drained
// without losing a request, readiness, and the end of the generation
// (hand-over to a successor on SIGHUP or `baton reload`, or SIGTERM).
func Example() {
	up, err := handoff.New(handoff.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer up.Close()

	// From LISTEN_FDS (name "http") when the manager or the predecessor
	// passed it, bound here otherwise.
	ln, err := up.Listen("http", "tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	gen := strconv.Itoa(up.Generation())
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello from generation", gen)
	})}
	up.Serve(handoff.HTTP(srv, ln))
	if err := up.Ready(); err != nil {
		fmt.Println(err)
		return
	}

	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	fmt.Print(string(body))

	up.Stop() // what SIGTERM does; a hand-over ends Wait the same way
	if err := up.Wait(); err != nil {
		fmt.Println(err)
	}
	// Output: hello from generation 1
}
