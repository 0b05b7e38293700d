package handoff

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/internal/spawn"
	"github.com/batonhq/baton/internal/testproc"
)

// wait bounds every wait for an event in the tests; reaching it is a
// failure, never a pass.
const wait = 30 * time.Second

// message is one sd_notify datagram and its sender.
type message struct {
	pid  int
	text string
	// local: the unix socket path (or "?") of each fd that came with it
	local []string
}

// receiver is a NOTIFY_SOCKET as the manager has it: SO_PASSCRED for the
// sender's pid, fds closed on receipt (which answers BARRIER=1).
type receiver struct {
	path string
	conn *net.UnixConn
	done chan struct{}

	mu      sync.Mutex
	msgs    []message
	changed chan struct{}
}

func newReceiver(t testing.TB) *receiver {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := c.SyscallConn()
	_ = rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) })
	r := &receiver{path: path, conn: c, done: make(chan struct{}), changed: make(chan struct{})}
	go r.loop()
	t.Cleanup(func() { _ = c.Close(); <-r.done })
	return r
}

func (r *receiver) loop() {
	defer close(r.done)
	buf := make([]byte, 4096)
	oob := make([]byte, 1024)
	for {
		n, oobn, _, _, err := r.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		m := message{text: string(buf[:n])}
		scms, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for _, scm := range scms {
			if cred, err := unix.ParseUnixCredentials(&scm); err == nil {
				m.pid = int(cred.Pid)
			}
			if fds, err := unix.ParseUnixRights(&scm); err == nil {
				for _, fd := range fds {
					local := "?"
					if sa, err := unix.Getsockname(fd); err == nil {
						if ua, ok := sa.(*unix.SockaddrUnix); ok {
							local = ua.Name
						}
					}
					m.local = append(m.local, local)
					_ = unix.Close(fd)
				}
			}
		}
		r.mu.Lock()
		r.msgs = append(r.msgs, m)
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
	}
}

// waitFor waits until ok holds for the messages received.
func (r *receiver) waitFor(t testing.TB, what string, ok func([]message) bool) []message {
	t.Helper()
	deadline := time.After(wait)
	for {
		r.mu.Lock()
		msgs := append([]message(nil), r.msgs...)
		ch := r.changed
		r.mu.Unlock()
		if ok(msgs) {
			return msgs
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no %s in sd_notify messages: %v", what, msgs)
		}
	}
}

func has(pid int, text string) func([]message) bool {
	return func(msgs []message) bool {
		for _, m := range msgs {
			if m.pid == pid && strings.Contains(m.text, text) {
				return true
			}
		}
		return false
	}
}

// service is a running chain of generations of the "server" helper.
type service struct {
	t       testing.TB
	addr    string
	notes   *receiver
	gen1    int
	exe     string
	udpAddr string

	reaped    chan struct{}
	mu        sync.Mutex
	exits     map[int]unix.WaitStatus
	exitedNow chan struct{}
}

type serviceOpts struct {
	env []string
	exe string // the executable to run (default: the test binary)
	udp bool   // also pass a UDP socket named "echo" (and set envUDP)
}

// startService binds a listener as the manager would, starts generation 1
// with it (LISTEN_FDS, LISTEN_FDNAMES=http) and a NOTIFY_SOCKET, and waits
// for READY=1.
func startService(t testing.TB, o serviceOpts) *service {
	t.Helper()
	lf, addr := testproc.ListenerFile(t)
	defer lf.Close()
	s := &service{
		t: t, addr: addr, notes: newReceiver(t), reaped: make(chan struct{}),
		exits: map[int]unix.WaitStatus{}, exitedNow: make(chan struct{}),
	}
	cmd := testproc.Command(t, "server")
	s.exe = cmd.Path
	if o.exe != "" {
		s.exe = o.exe
	}
	env := append(cmd.Env, "NOTIFY_SOCKET="+s.notes.path)
	env = append(env, o.env...)
	files, names := []*os.File{lf}, []string{"http"}
	if o.udp {
		pf, udpAddr := testproc.PacketFile(t)
		defer pf.Close()
		s.udpAddr = udpAddr
		files, names = append(files, pf), append(names, "echo")
		env = append(env, envUDP+"=1")
	}
	args := cmd.Args
	args[0] = s.exe // as a shell or systemd starts it
	p, err := spawn.Start(&spawn.Config{
		Path: s.exe, Args: args, Env: env,
		Files: files, Names: names,
		Stdout: os.Stderr, Stderr: os.Stderr, Mode: spawn.SelfFix,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.gen1 = p.Pid
	_ = p.Release()
	go s.reap()
	t.Cleanup(s.cleanup)
	s.notes.waitFor(t, "READY=1 from generation 1", has(s.gen1, "READY=1"))
	return s
}

// reap collects every exited descendant (the test is a subreaper) until
// none is left.
func (s *service) reap() {
	defer close(s.reaped)
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return
		}
		s.mu.Lock()
		s.exits[pid] = ws
		close(s.exitedNow)
		s.exitedNow = make(chan struct{})
		s.mu.Unlock()
	}
}

// waitExit waits until pid was reaped and returns its status.
func (s *service) waitExit(pid int) unix.WaitStatus {
	s.t.Helper()
	deadline := time.After(wait)
	for {
		s.mu.Lock()
		ws, ok := s.exits[pid]
		ch := s.exitedNow
		s.mu.Unlock()
		if ok {
			return ws
		}
		select {
		case <-ch:
		case <-deadline:
			s.t.Fatalf("pid %d did not exit", pid)
		}
	}
}

// forget drops a reaped exit of pid: the pid belongs to a new process.
func (s *service) forget(pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.exits, pid)
}

func (s *service) exited(pid int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.exits[pid]
	return ok
}

// cleanup stops whatever still runs (SIGTERM, then SIGKILL after wait)
// and waits until every descendant is reaped. Orphans are reparented to the
// test, so signalling its children reaches every generation in the end.
func (s *service) cleanup() {
	sig := syscall.SIGTERM
	deadline := time.Now().Add(wait)
	for {
		if sig == syscall.SIGTERM && time.Now().After(deadline) {
			s.t.Errorf("descendants still running after %s: killing them", wait)
			sig = syscall.SIGKILL
		}
		s.killAll(sig)
		select {
		case <-s.reaped:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// killAll signals every child of the test process.
func (s *service) killAll(sig syscall.Signal) {
	for _, pid := range children() {
		_ = syscall.Kill(pid, sig)
	}
}

func children() []int {
	var pids []int
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		b, _ := os.ReadFile("/proc/self/task/" + task.Name() + "/children")
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// get makes one request on a fresh connection and returns the X-Pid.
func (s *service) get(query string) (int, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: wait}
	resp, err := c.Get("http://" + s.addr + "/" + query)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %s", resp.Status)
	}
	return strconv.Atoi(resp.Header.Get("X-Pid"))
}

// load drives requests at a service until stopped: keepAlive clients reuse
// their connection until the server says Connection: close, fresh clients
// open one per request. Any error or non-200 answer is a failure: the
// clients never retry. It is chaos_linux_test.go's load, without kills.
type load = chaosLoad

func startLoad(addr string, keepAlive, fresh int) *load {
	return startChaosLoad(addr, keepAlive, fresh)
}

// fdCount returns the number of open fds of pid.
// fdCount counts pid's open fds but its pidfds: those watch other
// processes for a while (a successor, the predecessor's drain) and close
// when they exit, a moment later than a test can see.
func fdCount(pid int) int {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return -1
	}
	n := 0
	for _, e := range ents {
		if target, _ := os.Readlink(dir + "/" + e.Name()); target != "anon_inode:[pidfd]" {
			n++
		}
	}
	return n
}

// httpConn is one raw HTTP/1.1 client connection.
type httpConn struct {
	net.Conn
	br *bufio.Reader
}

// checkLeaks fails the test when it leaves an fd or a goroutine behind.
func checkLeaks(t *testing.T) {
	t.Helper()
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
}

func dialHTTP(network, addr string) (*httpConn, error) {
	c, err := net.DialTimeout(network, addr, wait)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(wait))
	return &httpConn{Conn: c, br: bufio.NewReader(c)}, nil
}

func (c *httpConn) send(path string) error {
	_, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: t\r\n\r\n")
	return err
}

func (c *httpConn) receive() (http.Header, error) {
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	if resp.Close {
		resp.Header.Set("Connection", "close")
	}
	return resp.Header, nil
}

func (c *httpConn) do(path string) (http.Header, error) {
	if err := c.send(path); err != nil {
		return nil, err
	}
	return c.receive()
}

// getHeaders makes one request on a fresh connection.
func getHeaders(network, addr string) (http.Header, error) {
	c, err := dialHTTP(network, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.do("/")
}

func unixGet(path string) (int, error) {
	h, err := getHeaders("unix", path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(h.Get("X-Pid"))
}

// rawDo makes one request and returns the response (body read).
func (c *httpConn) rawDo(path string) (*http.Response, error) {
	if err := c.send(path); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp, err
}

// drained checks that the drain and Serve both ended without an error.
func drained(t *testing.T, shut, served chan error) {
	t.Helper()
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v", err)
	}
}
