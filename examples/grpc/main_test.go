package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/batonhq/baton/internal/spawn"
	"github.com/batonhq/baton/internal/testproc"
)

func TestMain(m *testing.M) {
	testproc.Register("server", func() {
		if err := run("127.0.0.1:0", testproc.Args()[0]); err != nil {
			os.Exit(1)
		}
	})
	testproc.Main(m)
}

// TestUpgrades runs the server as a socket-activated process, upgrades it
// three times with SIGHUP under a stream of health checks, and expects
// every check to succeed.
func TestUpgrades(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lf, err := ln.(*net.TCPListener).File()
	_ = ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	pidfile := filepath.Join(t.TempDir(), "pid")
	cmd := testproc.Command(t, "server", pidfile)
	p, err := spawn.Start(&spawn.Config{
		Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Stderr: os.Stderr,
		Files: []*os.File{lf}, Names: []string{"grpc"}, Mode: spawn.SelfFix,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = p.Wait() }()

	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	var calls, failures atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
			calls.Add(1)
			if err != nil {
				failures.Add(1)
				t.Errorf("health check: %v", err)
			}
		}
	}()
	pid := testproc.WaitPIDFile(t, pidfile, 0)
	for range 3 {
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		pid = testproc.WaitPIDFile(t, pidfile, pid)
	}
	close(stop)
	<-done
	t.Logf("3 upgrades: %d health checks, %d failures", calls.Load(), failures.Load())
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The last generation is an orphan of the test's child, not ours to
	// wait for: wait until it is gone.
	for testproc.Alive(pid) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
}
