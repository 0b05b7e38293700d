//go:build linux

package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	testproc.Register("reload-client", func() {
		pid, _ := strconv.Atoi(testproc.Args()[0])
		_, err := Reload(context.Background(), pid)
		fmt.Println(err)
	})
	testproc.Register("serve-until-stdin-closes", func() {
		serve(func(context.Context) (int, error) { return os.Getpid(), nil })
	})
	testproc.Register("exit-in-handler", func() {
		serve(func(context.Context) (int, error) { os.Exit(0); return 0, nil })
	})
	testproc.Register("serve-undumpable", func() {
		// Its /proc/PID/fd is root's only, as a process in another user
		// namespace sees it (PrivateUsers=yes).
		if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
			fmt.Println(err)
			return
		}
		serve(func(context.Context) (int, error) { return 505, nil })
	})
	testproc.Register("serve-answering", func() {
		n, _ := strconv.Atoi(testproc.Args()[0])
		serve(func(context.Context) (int, error) { return n, nil })
	})
	testproc.Register("squat", func() {
		// Binds the names given and answers every request with a
		// success it has no right to report.
		var lns []*net.UnixListener
		for _, name := range testproc.Args() {
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
			if err != nil {
				fmt.Println(err)
				return
			}
			lns = append(lns, ln)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					_, _ = io.WriteString(c, `{"pid":4242}`+"\n")
					_ = c.Close()
				}
			}()
		}
		fmt.Println("listening")
		_, _ = io.Copy(io.Discard, os.Stdin)
		for _, ln := range lns {
			_ = ln.Close()
		}
	})
	testproc.Register("dial-name", func() {
		// Sends a reload request to the name given and prints the reply.
		c, err := net.Dial("unix", testproc.Args()[0])
		if err != nil {
			fmt.Println(err)
			return
		}
		defer c.Close()
		_, _ = io.WriteString(c, `{"op":"reload"}`+"\n")
		b, _ := io.ReadAll(c)
		fmt.Printf("%s", b)
	})
	testproc.Register("status-client", func() {
		pid, _ := strconv.Atoi(testproc.Args()[0])
		_, err := Status(context.Background(), pid)
		fmt.Println(err)
	})
	testproc.Main(m)
}

// serve is a helper's server: it listens with handler, says "listening"
// and serves until its stdin closes.
func serve(handler func(context.Context) (int, error)) {
	s, err := Listen(handler)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("listening")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = s.Close()
}

// startHelper starts a helper that prints "listening" and runs until its
// stdin closes (at the end of the test).
func startHelper(t *testing.T, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "listening\n" {
		t.Fatalf("helper %v said %q, %v", cmd.Args, line, err)
	}
	return cmd
}

// oldNames are the names the control socket of pids from..from+n-1 had
// when they were "@baton/control/<pid namespace inode>/<pid>": anyone
// could bind them first.
func oldNames(t *testing.T, from, n int) []string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/pid", &st); err != nil {
		t.Fatal(err)
	}
	var names []string
	for pid := from; pid < from+n; pid++ {
		names = append(names, fmt.Sprintf("@baton/control/%d/%d", st.Ino, pid))
	}
	return names
}

// TestNamesTakenInAdvance: another process bound the names the control
// socket of this process (and of the next pids) would have had under a
// name derived from the pid. Listen does not fail, and Reload reaches
// this process's server, not the squatter. Before, Listen failed
// ("bind: address already in use") and a server exited at start.
func TestNamesTakenInAdvance(t *testing.T) {
	testproc.CheckFDs(t)
	startHelper(t, testproc.Command(t, "squat", oldNames(t, os.Getpid(), 50)...))
	s, err := Listen(func(context.Context) (int, error) { return 4343, nil })
	if err != nil {
		t.Fatalf("Listen with the old names taken: %v", err)
	}
	defer s.Close()
	if pid, err := Reload(t.Context(), os.Getpid()); err != nil || pid != 4343 {
		t.Errorf("Reload = %d, %v; want 4343 from this process's server", pid, err)
	}
	// A helper started now (a pid among those taken) listens too.
	server := startHelper(t, testproc.Command(t, "serve-answering", "4444"))
	if pid, err := Reload(t.Context(), server.Process.Pid); err != nil || pid != 4444 {
		t.Errorf("Reload of pid %d = %d, %v; want 4444", server.Process.Pid, pid, err)
	}
}

// TestNoGuessableName: the name a server binds is found only through the
// process's own sockets: it does not contain the pid, and a second
// server's name differs.
func TestNoGuessableName(t *testing.T) {
	s := listenT(t, func(context.Context) (int, error) { return 1, nil })
	name := s.ln.Addr().String()
	if !strings.HasPrefix(name, "@baton/control/") || strings.Contains(name, strconv.Itoa(os.Getpid())) {
		t.Errorf("control socket name %q: want @baton/control/ and no pid", name)
	}
	got, err := find(os.Getpid())
	if err != nil || got != name {
		t.Errorf("find(own pid) = %q, %v; want %q", got, err, name)
	}
}

// TestStranger: a process that binds another one's control socket name
// is not believed: Reload checks who answers (SO_PEERCRED) and sends it
// nothing. The victim here holds a listening socket the squatter gave
// it with the name, as an inherited fd would.
func TestStranger(t *testing.T) {
	testproc.CheckFDs(t)
	name := "@baton/control/" + strings.Repeat("ab", 16)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	victim := exec.Command("sleep", "60")
	victim.ExtraFiles = []*os.File{f}
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = victim.Process.Kill(); _ = victim.Wait() }()
	pid, err := Reload(t.Context(), victim.Process.Pid)
	var se *StrangerError
	if !errors.As(err, &se) || se.Peer != os.Getpid() {
		t.Fatalf("Reload of a socket another process created = %d, %v; want a *StrangerError naming pid %d", pid, err, os.Getpid())
	}
	t.Log(err)
}

// TestNetworkNamespace: a server in a network namespace of its own (the
// default hardened units: PrivateNetwork=yes) is reached by root, which
// enters the namespace for the dial; another user gets a
// *NamespaceError naming it.
func TestNetworkNamespace(t *testing.T) {
	testproc.RequireRoot(t)
	testproc.CheckFDs(t)
	cmd := testproc.Command(t, "serve-answering", "303")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	server := startHelper(t, cmd)
	if got, err := Reload(t.Context(), server.Process.Pid); err != nil || got != 303 {
		t.Errorf("Reload of pid %d in a network namespace of its own = %d, %v; want 303", server.Process.Pid, got, err)
	}
	if _, err := Status(t.Context(), server.Process.Pid); !errors.As(err, new(*Error)) {
		t.Errorf("Status = %v, want the server's answer (bad-request: no status function)", err)
	}

	// Not root: the same uid, no CAP_SYS_ADMIN.
	cmd = testproc.CommandAs(t, 65534, 65534, "serve-answering", "404")
	cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWNET
	server = startHelper(t, cmd)
	out, err := testproc.CommandAs(t, 65534, 65534, "status-client", strconv.Itoa(server.Process.Pid)).Output()
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", server.Process.Pid), &st); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("network namespace net:[%d]", st.Ino); !strings.Contains(string(out), want) {
		t.Errorf("client as uid 65534 got %q, want it to name %q", out, want)
	}
	t.Logf("as uid 65534: %s", out)
}

// TestPidNamespaces: two servers that are each pid 1 of a pid namespace
// of their own, in one network namespace (containers in one Kubernetes
// pod), both listen, and each request reaches the one asked.
func TestPidNamespaces(t *testing.T) {
	testproc.RequireRoot(t)
	var pids []int
	for _, answer := range []string{"101", "202"} {
		cmd := testproc.Command(t, "serve-answering", answer)
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
		pids = append(pids, startHelper(t, cmd).Process.Pid)
	}
	for i, want := range []int{101, 202} {
		if got, err := Reload(t.Context(), pids[i]); err != nil || got != want {
			t.Errorf("Reload of pid %d (pid 1 of its namespace) = %d, %v; want %d", pids[i], got, err, want)
		}
	}
}

// TestNoProcess: a pid that names no process is ErrNoServer.
func TestNoProcess(t *testing.T) {
	if _, err := Reload(t.Context(), 1<<22+1); !errors.Is(err, ErrNoServer) {
		t.Errorf("Reload of no process = %v, want ErrNoServer", err)
	}
}

func listenT(t *testing.T, h Handler) *Server {
	t.Helper()
	s, err := Listen(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestReloadOutcomes(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	var next func(context.Context) (int, error)
	s := listenT(t, func(ctx context.Context) (int, error) { return next(ctx) })
	tests := []struct {
		name    string
		handler func(context.Context) (int, error)
		wantPID int
		wantErr error
		wantMsg string
	}{
		{name: "ok", handler: func(context.Context) (int, error) { return 4242, nil }, wantPID: 4242},
		{name: "in progress", handler: func(context.Context) (int, error) {
			return 0, fmt.Errorf("generation 3 starting: %w", ErrInProgress)
		}, wantErr: ErrInProgress, wantMsg: "generation 3 starting"},
		{name: "stopping", handler: func(context.Context) (int, error) {
			return 0, fmt.Errorf("upgrade to generation 2: ready: %w (successor killed)", ErrStopping)
		}, wantErr: ErrStopping, wantMsg: "generation stopping"},
		{name: "failed", handler: func(context.Context) (int, error) {
			return 0, errors.New("child exited with status 3")
		}, wantErr: ErrFailed, wantMsg: "child exited with status 3"},
	}
	for _, tt := range tests {
		next = tt.handler
		pid, err := Reload(t.Context(), os.Getpid())
		if pid != tt.wantPID || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("%s: Reload = %d, %v; want %d, %v", tt.name, pid, err, tt.wantPID, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), tt.wantMsg) {
			t.Errorf("%s: error %q does not say %q", tt.name, err, tt.wantMsg)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := Reload(t.Context(), os.Getpid()); !errors.Is(err, ErrNoServer) {
		t.Errorf("Reload after Close = %v, want ErrNoServer", err)
	}
}

// TestReloadNoReply: a server that exits while it handles the request
// leaves the client ErrNoReply.
func TestReloadNoReply(t *testing.T) {
	testproc.CheckFDs(t)
	server := startHelper(t, testproc.Command(t, "exit-in-handler"))
	_, err := Reload(t.Context(), server.Process.Pid)
	var ce *Error
	if !errors.Is(err, ErrNoReply) || errors.As(err, &ce) {
		t.Errorf("Reload of a server that exits = %v, want ErrNoReply", err)
	}
}

func TestCloseCancelsHandler(t *testing.T) {
	testproc.CheckGoroutines(t)
	started := make(chan struct{})
	s := listenT(t, func(ctx context.Context) (int, error) {
		close(started)
		<-ctx.Done()
		return 0, ctx.Err()
	})
	done := make(chan error, 1)
	go func() { _, err := Reload(context.Background(), os.Getpid()); done <- err }()
	<-started
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-done; err == nil {
		t.Error("Reload succeeded while the server closed")
	}
}

func TestReloadContext(t *testing.T) {
	release := make(chan struct{})
	listenT(t, func(context.Context) (int, error) { <-release; return 1, nil })
	defer close(release)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := Reload(ctx, os.Getpid()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Reload = %v, want a deadline error", err)
	}
}

func TestOtherUIDDenied(t *testing.T) {
	testproc.RequireRoot(t)
	// The server runs as uid 65534, the client as 65533: neither root nor
	// the same uid. The client cannot read the server's fds; it finds
	// the socket by its peer's pid, and the server refuses it.
	server := startHelper(t, testproc.CommandAs(t, 65534, 65534, "serve-until-stdin-closes"))
	client := testproc.CommandAs(t, 65533, 65534, "reload-client", strconv.Itoa(server.Process.Pid))
	out, err := client.Output()
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	if want := "uid 65533 may not control a process of uid 65534"; !strings.Contains(string(out), want) {
		t.Errorf("client as uid 65533 got %q, want %q", out, want)
	}
	// One that learnt the name elsewhere (/proc/net/unix lists it) and
	// dials it is refused by the server.
	name, err := find(server.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	out, err = testproc.CommandAs(t, 65533, 65534, "dial-name", name).Output()
	if err != nil {
		t.Fatalf("dialer: %v", err)
	}
	if want := "uid 65533 may not control a process of uid 65534"; !strings.Contains(string(out), want) {
		t.Errorf("dialer as uid 65533 got %q, want %q", out, want)
	}
	// Root may.
	if pid, err := Reload(t.Context(), server.Process.Pid); err != nil || pid != server.Process.Pid {
		t.Errorf("Reload as root = %d, %v; want %d", pid, err, server.Process.Pid)
	}
}

// TestHiddenFDs: a caller of the same uid that may not read the server's
// fds (ExecReload= under ProtectProc=invisible and PrivateUsers=yes: the
// target's /proc entries are hidden) finds the server among its network
// namespace's control sockets by the listening pid. Before, `systemctl
// reload` of the default hardened units failed ("no such process").
func TestHiddenFDs(t *testing.T) {
	testproc.RequireRoot(t)
	server := startHelper(t, testproc.CommandAs(t, 65534, 65534, "serve-undumpable"))
	out, err := testproc.CommandAs(t, 65534, 65534, "reload-client", strconv.Itoa(server.Process.Pid)).Output()
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != "<nil>" {
		t.Errorf("Reload as the same uid, fds not readable: %s; want success", got)
	}
}
