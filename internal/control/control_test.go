package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
)

func TestMain(m *testing.M) {
	testproc.Register("reload-client", func() {
		pid, _ := strconv.Atoi(testproc.Args()[0])
		_, err := Reload(context.Background(), pid)
		fmt.Println(err)
	})
	testproc.Register("serve-until-stdin-closes", func() {
		s, err := Listen(func(context.Context) (int, error) { return os.Getpid(), nil })
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("listening")
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = s.Close()
	})
	testproc.Register("exit-in-handler", func() {
		_, err := Listen(func(context.Context) (int, error) { os.Exit(0); return 0, nil })
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("listening")
		_, _ = io.Copy(io.Discard, os.Stdin)
	})
	testproc.Main(m)
}

func listen(t *testing.T, h Handler) *Server {
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
	s := listen(t, func(ctx context.Context) (int, error) { return next(ctx) })
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
	server := testproc.Command(t, "exit-in-handler")
	stdin, err := server.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := server.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stdin.Close(); _ = server.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "listening\n" {
		t.Fatalf("server helper said %q, %v", line, err)
	}
	_, err = Reload(t.Context(), server.Process.Pid)
	var ce *Error
	if !errors.Is(err, ErrNoReply) || errors.As(err, &ce) {
		t.Errorf("Reload of a server that exits = %v, want ErrNoReply", err)
	}
}

func TestCloseCancelsHandler(t *testing.T) {
	testproc.CheckGoroutines(t)
	started := make(chan struct{})
	s := listen(t, func(ctx context.Context) (int, error) {
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
	listen(t, func(context.Context) (int, error) { <-release; return 1, nil })
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
	// the same uid.
	server := testproc.CommandAs(t, 65534, 65534, "serve-until-stdin-closes")
	stdin, err := server.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := server.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stdin.Close(); _ = server.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "listening\n" {
		t.Fatalf("server helper said %q, %v", line, err)
	}
	client := testproc.CommandAs(t, 65533, 65534, "reload-client", strconv.Itoa(server.Process.Pid))
	out, err := client.Output()
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	if want := "permission denied: uid 65533 may not control a process of uid 65534"; !strings.Contains(string(out), "uid 65533 may not control a process of uid 65534") {
		t.Errorf("client as uid 65533 got %q, want %q", out, want)
	}
	// Root may.
	if pid, err := Reload(t.Context(), server.Process.Pid); err != nil || pid != server.Process.Pid {
		t.Errorf("Reload as root = %d, %v; want %d", pid, err, server.Process.Pid)
	}
}
