//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/batonhq/baton/internal/exampletest"
	"github.com/batonhq/baton/internal/testproc"
)

// testDrainTimeout bounds each generation's drain in the tests: a
// generation whose drain hits it fails its run.
const testDrainTimeout = 10 * time.Second

func TestMain(m *testing.M) {
	exampletest.Register("server", func(pidfile string, _ []string) error {
		return run(config{listen: "127.0.0.1:0", pidfile: pidfile, drainTimeout: testDrainTimeout})
	})
	exampletest.Main(m)
}

// TestEchoAcrossUpgrades upgrades the server 200 times with SIGHUP while
// WebSocket clients echo without pause, each with up to window messages
// awaiting their echo. Before each upgrade every client has had an echo
// from the current generation, so each upgrade drains open connections.
//
// A connection's end is clean when the client gets the close frame with
// 1001 and the reason "restarting: echoed N" and got exactly N echoes
// before it, each equal to the message at its place in the order sent; the
// client then connects again. Every other end (EOF or a reset without a
// close frame, another status) is abrupt. A lost echo is one the server
// reported (counted in N) that did not arrive, or an echo that differs
// from the message it answers. The messages sent but not echoed on a
// cleanly closed connection are those the server took after it decided
// to go away, or never read: they crossed the close frame, and are
// counted apart. The test expects no failed dial, no abrupt end, no lost
// echo, every generation gone and none whose drain hit its deadline.
func TestEchoAcrossUpgrades(t *testing.T) {
	const (
		upgrades = 200
		clients  = 8 // long-lived connections
		window   = 4
		dialers  = 2 // a new connection for each message
	)
	srv := start(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var c counts
	last := make([]*atomic.Int64, clients) // the pid that last echoed, by client
	var wg sync.WaitGroup
	for i := range clients {
		cl := &client{id: i, url: "ws://" + srv.Addr + "/ws", window: window, c: &c}
		last[i] = &cl.pid
		wg.Go(func() { cl.run(ctx) })
	}
	for i := range dialers {
		d := &client{id: clients + i, url: "ws://" + srv.Addr + "/ws", window: 1, once: true, c: &c}
		wg.Go(func() { d.run(ctx) })
	}
	begin := time.Now()
	exampletest.AwaitPID(t, "clients", last, srv.PID())
	for range upgrades {
		exampletest.AwaitPID(t, "clients", last, srv.Upgrade())
	}
	took := time.Since(begin)
	cancel()
	wg.Wait()
	srv.Stop()

	t.Logf("%d upgrades in %v: %d connections, %d echoes; %d closed with 1001, %d closed by one-message clients, "+
		"%d abrupt ends, %d failed dials; %d lost echoes; %d messages crossed the close frame",
		upgrades, took.Round(time.Millisecond), c.conns.Load(), c.echoes.Load(),
		c.clean.Load(), c.closed.Load(), c.abrupt.Load(), c.failedDials.Load(), c.lost.Load(), c.crossed.Load())
	for _, e := range c.List() {
		t.Error(e)
	}
	if c.abrupt.Load() != 0 || c.failedDials.Load() != 0 || c.lost.Load() != 0 {
		t.Errorf("%d abrupt ends, %d failed dials, %d lost echoes; want 0 each",
			c.abrupt.Load(), c.failedDials.Load(), c.lost.Load())
	}
	// Each upgrade closed every connection it found open.
	if c.closed.Load() == 0 {
		t.Error("no one-message client closed a connection")
	}
	if got, want := c.clean.Load(), int64(upgrades*clients); got < want {
		t.Errorf("%d connections closed with 1001, want at least %d", got, want)
	}
}

// TestDrainWaitsForWebSocket: a generation that handed over does not exit
// while a WebSocket it serves is open (its close frame unanswered, since
// the client does not read), and exits once the client answered it.
func TestDrainWaitsForWebSocket(t *testing.T) {
	srv := start(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	gen1 := srv.PID()
	conn, pid := dial(ctx, t, srv.Addr)
	defer func() { _ = conn.CloseNow() }()
	if pid != gen1 {
		t.Fatalf("connected to pid %d, want %d", pid, gen1)
	}
	if err := conn.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, b, err := conn.Read(ctx); err != nil || string(b) != "hello" {
		t.Fatalf("echo %q, %v; want \"hello\"", b, err)
	}

	gen2 := srv.Upgrade()
	// The successor serves, and generation 1 waits for this connection. A
	// drain without WebSockets takes about a millisecond; the close frame
	// is awaited for 5 s: 300 ms tells them apart.
	next, pid := dial(ctx, t, srv.Addr)
	defer func() { _ = next.CloseNow() }()
	if pid != gen2 {
		t.Errorf("new connection reached pid %d, want %d", pid, gen2)
	}
	time.Sleep(300 * time.Millisecond)
	if !testproc.Alive(gen1) {
		t.Fatalf("generation 1 (pid %d) exited with a WebSocket open", gen1)
	}
	_, _, err := conn.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway || ce.Reason != "restarting: echoed 1" {
		t.Errorf("read after the upgrade: %v; want the close frame 1001 \"restarting: echoed 1\"", err)
	}
	testproc.WaitGone(t, gen1)
	if err := next.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Error(err)
	}
	srv.Stop()
}

// start runs the example socket-activated (name "http"), its
// generations' log kept for a failed test. A generation whose run failed
// (its drain hit testDrainTimeout among the causes) fails the test at Stop.
func start(t *testing.T) *exampletest.Server {
	t.Helper()
	return exampletest.Start(t, exampletest.Config{Helper: "server", Socket: "http", Log: true})
}

// noReuse makes every handshake a new TCP connection: net/http retries a
// request only on a reused one, so nothing is retried behind the counts.
var noReuse = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// dial opens a WebSocket and returns it with the pid that answered.
func dial(ctx context.Context, t *testing.T, addr string) (*websocket.Conn, int) {
	t.Helper()
	conn, resp, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{HTTPClient: noReuse})
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(resp.Header.Get("X-Pid"))
	if err != nil {
		t.Fatalf("X-Pid %q: %v", resp.Header.Get("X-Pid"), err)
	}
	return conn, pid
}

// counts are the clients' tallies.
type counts struct {
	conns, echoes atomic.Int64
	clean, abrupt atomic.Int64
	cleanLong     atomic.Int64 // clean, of a long-lived client
	closed        atomic.Int64 // by a one-message client, after its echo
	failedDials   atomic.Int64
	lost, crossed atomic.Int64
	exampletest.Failures
}

// client echoes on one connection at a time, connecting again when the
// server closed it with 1001. A once client sends one message on each
// connection and closes it (1000) after the echo.
type client struct {
	id     int
	url    string
	window int
	once   bool
	c      *counts
	pid    atomic.Int64 // the pid of the connection that last echoed
	n      int          // connections so far
}

func (cl *client) run(ctx context.Context) {
	for ctx.Err() == nil {
		cl.session(ctx)
	}
}

// session connects, echoes until the connection ends, and counts how it
// ended.
func (cl *client) session(ctx context.Context) {
	conn, resp, err := websocket.Dial(ctx, cl.url, &websocket.DialOptions{HTTPClient: noReuse})
	if err != nil {
		if ctx.Err() == nil {
			cl.c.failedDials.Add(1)
			cl.c.Note("client %d: dial: %v", cl.id, err)
		}
		return
	}
	defer func() { _ = conn.CloseNow() }()
	cl.n++
	cl.c.conns.Add(1)
	pid, err := strconv.Atoi(resp.Header.Get("X-Pid"))
	if err != nil {
		cl.c.Note("client %d: X-Pid %q", cl.id, resp.Header.Get("X-Pid"))
	}

	// The writer queues each message before sending it: the queue holds,
	// in order, the messages whose echo is awaited (window at most).
	queue := make(chan string, cl.window)
	wctx, stopWriter := context.WithCancel(ctx)
	var sent atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for seq := 0; ; seq++ {
			msg := fmt.Sprintf("client %d connection %d message %d", cl.id, cl.n, seq)
			select {
			case queue <- msg:
			case <-wctx.Done():
				return
			}
			if err := conn.Write(wctx, websocket.MessageText, []byte(msg)); err != nil {
				return
			}
			sent.Add(1)
			if cl.once {
				return
			}
		}
	})
	defer func() { stopWriter(); wg.Wait() }()

	received := int64(0)
	for {
		_, b, err := conn.Read(ctx)
		if ctx.Err() != nil {
			return // the test is over
		}
		if err != nil {
			stopWriter()
			wg.Wait()
			cl.end(err, received, sent.Load())
			return
		}
		var want string
		select {
		case want = <-queue:
		default:
		}
		if string(b) != want {
			cl.c.lost.Add(1)
			cl.c.Note("client %d: echo %q, want %q", cl.id, b, want)
			return
		}
		received++
		cl.c.echoes.Add(1)
		cl.pid.Store(int64(pid))
		if cl.once {
			wg.Wait()
			err := conn.Close(websocket.StatusNormalClosure, "")
			switch {
			case err == nil:
				cl.c.closed.Add(1)
			case websocket.CloseStatus(err) == websocket.StatusGoingAway:
				// The server's close frame crossed ours.
				cl.end(err, received, sent.Load())
			default:
				cl.c.abrupt.Add(1)
				cl.c.Note("client %d: close: %v", cl.id, err)
			}
			return
		}
	}
}

// end counts a connection that ended with err after received echoes.
func (cl *client) end(err error, received, sent int64) {
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway {
		cl.c.abrupt.Add(1)
		cl.c.Note("client %d: abrupt end after %d echoes: %v", cl.id, received, err)
		return
	}
	var n int64
	if _, err := fmt.Sscanf(ce.Reason, "restarting: echoed %d", &n); err != nil {
		cl.c.abrupt.Add(1)
		cl.c.Note("client %d: close reason %q: %v", cl.id, ce.Reason, err)
		return
	}
	cl.c.clean.Add(1)
	if !cl.once {
		cl.c.cleanLong.Add(1)
	}
	if n != received {
		cl.c.lost.Add(max(n-received, 1))
		cl.c.Note("client %d: the server echoed %d messages, %d echoes arrived", cl.id, n, received)
	}
	cl.c.crossed.Add(sent - received)
}
