package notify_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/batonhq/baton/notify"
	"golang.org/x/sys/unix"
)

// manager stands in for systemd in the examples: a datagram socket in a
// temporary directory that prints what it receives.
type manager struct {
	dir  string
	conn *net.UnixConn
}

func newManager() *manager {
	dir, err := os.MkdirTemp("", "notify-example")
	if err != nil {
		log.Fatal(err)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "notify"), Net: "unixgram"})
	if err != nil {
		log.Fatal(err)
	}
	return &manager{dir: dir, conn: conn}
}

func (m *manager) socket() string { return filepath.Join(m.dir, "notify") }

// print reads n datagrams and prints each with the number of fds it
// carried, closing them: for a barrier, that is the manager's answer.
func (m *manager) print(n int) {
	for range n {
		buf := make([]byte, notify.MaxMessageSize)
		oob := make([]byte, unix.CmsgSpace(4*notify.MaxFDsPerMessage))
		k, oobn, _, _, err := m.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			log.Fatal(err)
		}
		var fds []int
		cmsgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for _, cm := range cmsgs {
			got, _ := unix.ParseUnixRights(&cm)
			fds = append(fds, got...)
		}
		fmt.Printf("manager got %q with %d fds\n", buf[:k], len(fds))
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	}
}

func (m *manager) close() {
	_ = m.conn.Close()
	_ = os.RemoveAll(m.dir)
}

func Example() {
	m := newManager()
	defer m.close()
	old, had := os.LookupEnv("NOTIFY_SOCKET")
	os.Setenv("NOTIFY_SOCKET", m.socket()) // systemd does this for a Type=notify service
	defer func() {
		if had {
			os.Setenv("NOTIFY_SOCKET", old)
		} else {
			os.Unsetenv("NOTIFY_SOCKET")
		}
	}()

	c, err := notify.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Status("listening on :8080"); err != nil {
		log.Fatal(err)
	}
	if err := c.Ready(); err != nil {
		log.Fatal(err)
	}
	m.print(2)
	// Output:
	// manager got "STATUS=listening on :8080" with 0 fds
	// manager got "READY=1" with 0 fds
}

func ExampleFromEnv() {
	if old, ok := os.LookupEnv("NOTIFY_SOCKET"); ok {
		os.Unsetenv("NOTIFY_SOCKET")
		defer os.Setenv("NOTIFY_SOCKET", old)
	}

	// Not started by a manager: the Client is disabled, calls are no-ops.
	c, err := notify.FromEnv()
	fmt.Println("error:", err)
	fmt.Println("enabled:", c.Enabled())
	fmt.Println("ready:", c.Ready())
	// Output:
	// error: <nil>
	// enabled: false
	// ready: <nil>
}

// The old generation hands the service to its ready successor, then waits
// until the manager has read that before it exits.
func ExampleClient_HandOver() {
	m := newManager()
	defer m.close()
	c, err := notify.Dial(m.socket())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	var wg sync.WaitGroup
	wg.Go(func() { m.print(2) })

	successor := 4242 // the pid of the started, ready successor
	if err := c.HandOver(successor); err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = c.Barrier(ctx) // returns once the manager closed the pipe
	wg.Wait()
	fmt.Println("barrier:", err)
	// From here on, say nothing more to the manager; drain and exit.

	// Output:
	// manager got "MAINPID=4242\nREADY=1" with 0 fds
	// manager got "BARRIER=1" with 1 fds
	// barrier: <nil>
}

// A listening socket goes to the manager's fd store (the unit needs
// FileDescriptorStoreMax=1 or more); after a restart it comes back in
// LISTEN_FDS under the name "http".
func ExampleClient_FDStore() {
	m := newManager()
	defer m.close()
	c, err := notify.Dial(m.socket())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	if err := c.FDStoreWith(notify.FDStoreOptions{Name: "http", NoPoll: true}, f); err != nil {
		log.Fatal(err)
	}
	m.print(1)
	// Output:
	// manager got "FDSTORE=1\nFDNAME=http\nFDPOLL=0" with 1 fds
}

// The watchdog loop runs beside the service and is joined at shutdown. In
// a successor generation, set ClaimFromParent.
func ExampleClient_RunWatchdog() {
	c, err := notify.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := c.RunWatchdog(ctx, notify.WatchdogConfig{}); err != nil {
			log.Print(err) // the manager will act when pings stop
		}
	})

	// ... serve ...

	stop()
	wg.Wait()
}

func ExampleWithoutEnv() {
	env := []string{"PATH=/usr/bin", "NOTIFY_SOCKET=/run/systemd/notify", "WATCHDOG_USEC=10000000", "WATCHDOG_PID=1234"}
	// A helper program must not speak for the service.
	fmt.Println(notify.WithoutEnv(env))
	// Output:
	// [PATH=/usr/bin]
}
