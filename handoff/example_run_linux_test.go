package handoff_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/batonhq/baton/handoff"
)

// One line adopts handoff for an http.Server: the socket named "http"
// from the manager or the predecessor, srv.Addr when started by hand.
// SIGHUP upgrades; SIGTERM stops (here sent by the example to itself).
func ExampleListenAndServe() {
	srv := &http.Server{Addr: freeAddr(), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello")
	})}
	served := make(chan error, 1)
	go func() { served <- handoff.ListenAndServe(srv, handoff.Config{NoControl: true}) }()

	fmt.Print(getBody("http://" + srv.Addr + "/"))
	_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	fmt.Println("returned:", <-served)
	// Output:
	// hello
	// returned: <nil>
}

// Run is Serve, Ready, Wait and Close in one call, for any servers.
func ExampleUpgrader_Run() {
	up, err := handoff.New(handoff.Config{NoSignals: true, NoControl: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	ln, err := up.Listen("http", "tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello from generation", up.Generation())
	})}
	served := make(chan error, 1)
	go func() { served <- up.Run(handoff.HTTP(srv, ln)) }()

	fmt.Print(getBody("http://" + ln.Addr().String() + "/"))
	up.Stop() // what SIGTERM does; a hand-over ends Run the same way
	fmt.Println("returned:", <-served)
	// Output:
	// hello from generation 1
	// returned: <nil>
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer ln.Close()
	return ln.Addr().String()
}

// getBody gets url once the server answers (it starts in a goroutine).
func getBody(url string) string {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			return string(b)
		}
		if time.Now().After(deadline) {
			return err.Error()
		}
		time.Sleep(10 * time.Millisecond)
	}
}
