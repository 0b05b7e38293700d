//go:build linux

package main

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/batonhq/baton/internal/exampletest"
	"github.com/batonhq/baton/internal/testproc"
)

// servedBy opens a Pids.Watch stream on a new connection and returns the
// pid its first message names.
func servedBy(ctx context.Context, addr string) (int, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDisableRetry())
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cs, err := conn.NewStream(ctx, &pidsDesc.Streams[0], watchMethod)
	if err != nil {
		return 0, err
	}
	if err := cs.SendMsg(&emptypb.Empty{}); err != nil {
		return 0, err
	}
	var msg wrapperspb.StringValue
	if err := cs.RecvMsg(&msg); err != nil {
		return 0, err
	}
	var pid, gen int
	if _, err := fmt.Sscanf(msg.Value, "pid %d generation %d", &pid, &gen); err != nil {
		return 0, fmt.Errorf("message %q: %w", msg.Value, err)
	}
	return pid, nil
}

// awaitServedBy waits until a new stream is served by a pid ok accepts.
func awaitServedBy(t *testing.T, addr string, ok func(int) bool) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		pid, err := servedBy(t.Context(), addr)
		if err == nil && ok(pid) {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stream served as wanted (last: pid %d, %v)", pid, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWatchWindowRollback: with -watch-window the old generation, its
// listener paused at the cut-over (the grpc.Server is not stopped), serves
// again when its successor is killed within the window; twice, so that
// the resumed server is itself paused and resumed.
func TestWatchWindowRollback(t *testing.T) {
	srv := exampletest.Start(t, exampletest.Config{Helper: "server-watch", Socket: "grpc", Log: true})
	old := srv.PID()
	for range 2 {
		if err := syscall.Kill(old, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		next := awaitServedBy(t, srv.Addr, func(pid int) bool { return pid != old })
		if err := syscall.Kill(next, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		testproc.WaitGone(t, next)
		awaitServedBy(t, srv.Addr, func(pid int) bool { return pid == old })
	}
}
