package activation_test

import (
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"

	"github.com/batonhq/baton/activation"
)

// A server that takes its listener from systemd when socket-activated and
// opens it itself otherwise. Run by hand (as here), it falls back.
func Example_listener() {
	var ln net.Listener
	set, err := activation.Receive()
	switch {
	case errors.Is(err, activation.ErrNotActivated):
		fmt.Println("not socket-activated: listening on my own")
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	case err != nil:
		log.Fatal(err) // malformed LISTEN_* variables: say which and stop
	default:
		defer set.Close() // closes what is not taken
		ln, err = set.Listener("http")
	}
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go func() { _ = srv.Serve(ln) }()
	fmt.Println("serving")
	_ = srv.Close()
	// Output:
	// not socket-activated: listening on my own
	// serving
}

// Receive tells a process that was not socket-activated apart from one
// whose variables are wrong.
func ExampleReceive() {
	set, err := activation.Receive()
	if errors.Is(err, activation.ErrNotActivated) {
		fmt.Println(err)
		return
	}
	if err != nil {
		var envErr *activation.EnvError
		if errors.As(err, &envErr) {
			fmt.Println("bad", envErr.Var, "value", envErr.Value)
		}
		return
	}
	defer set.Close()
	for _, f := range set.Files() {
		fmt.Println(f) // e.g. fd 3 "http" tcp listener 0.0.0.0:80
	}
	// Output: activation: not socket-activated: LISTEN_PID is not set
}

// Every fd of a socket unit carries its FileDescriptorName=: a unit with
// two ListenStream= lines gives two listeners of one name.
func ExampleSet_Listeners() {
	set, err := activation.Receive()
	if err != nil {
		fmt.Println(errors.Is(err, activation.ErrNotActivated))
		return
	}
	defer set.Close()
	lns, err := set.Listeners("http")
	if err != nil {
		log.Fatal(err) // lists the names the Set has
	}
	for _, ln := range lns {
		go func() { _ = http.Serve(ln, nil) }()
	}
	// Output: true
}

// A datagram socket from ListenDatagram=.
func ExampleSet_PacketConn() {
	set, err := activation.Receive()
	if err != nil {
		return
	}
	defer set.Close()
	pc, err := set.PacketConn("dns")
	if errors.Is(err, activation.ErrNoSocket) {
		log.Fatal(err) // activation: no datagram socket named "dns" (have ...)
	}
	defer pc.Close()
	buf := make([]byte, 512)
	n, from, err := pc.ReadFrom(buf)
	if err == nil {
		_, _ = pc.WriteTo(buf[:n], from)
	}
}

// A service of an Accept=yes socket unit is started for one connection,
// named "connection".
func ExampleSet_Conn() {
	set, err := activation.Receive()
	if err != nil {
		return
	}
	defer set.Close()
	c, err := set.Conn(activation.NameConnection)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintln(c, "hello")
}
