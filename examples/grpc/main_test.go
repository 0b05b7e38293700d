//go:build linux

package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/batonhq/baton/internal/exampletest"
)

// testDrainTimeout bounds each generation's drain in the test: a stream
// that held GracefulStop would make its generation's run fail.
const testDrainTimeout = 5 * time.Second

func TestMain(m *testing.M) {
	exampletest.Register("server", func(pidfile string, _ []string) error {
		return run(config{listen: "127.0.0.1:0", pidfile: pidfile, drainTimeout: testDrainTimeout})
	})
	exampletest.Register("server-watch", func(pidfile string, _ []string) error {
		return run(config{listen: "127.0.0.1:0", pidfile: pidfile, drainTimeout: testDrainTimeout, watchWindow: time.Minute})
	})
	exampletest.Main(m)
}

// TestStreamsAcrossUpgrades upgrades the server 200 times with SIGHUP while
// Pids.Watch and health Watch streams are open and unary health checks run
// without pause, each client on a grpc-go ClientConn without retries.
// Before each upgrade every Pids stream has a message from the current
// generation, so each upgrade drains open streams. A stream ended by the
// drain (UNAVAILABLE with drainMessage) is opened again and counted; any
// other end (a transport error: reset, EOF, "transport is closing") is
// abrupt. It expects no failed call, no abrupt end, no call the server
// refused (grpc-go retries those by itself even WithDisableRetry: they are
// counted apart, see transparentRetries), every generation gone and none
// whose drain hit its deadline.
func TestStreamsAcrossUpgrades(t *testing.T) {
	const (
		upgrades  = 200
		streamers = 8 // Pids.Watch streams, each on its own connection
		watchers  = 2 // health Watch streams, each on its own connection
		callers   = 4 // unary health checks, on one shared connection
	)
	// A generation whose drain hits testDrainTimeout fails its run: Stop
	// fails the test for it.
	srv := exampletest.Start(t, exampletest.Config{Helper: "server", Socket: "grpc", Log: true})
	addr := srv.Addr

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var c counts
	var conns []*grpc.ClientConn
	dial := func() *grpc.ClientConn {
		opts := append(transparentRetries{&c}.dialOptions(),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDisableRetry())
		conn, err := grpc.NewClient(addr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
		return conn
	}
	var wg sync.WaitGroup
	last := make([]*atomic.Int64, streamers) // the pid in the last message, by Pids stream
	for i := range streamers + watchers {
		s := &streamer{conn: dial(), health: i >= streamers, c: &c}
		if !s.health {
			last[i] = &s.pid
		}
		wg.Go(func() { s.run(ctx) })
	}
	health := healthpb.NewHealthClient(dial())
	for range callers {
		wg.Go(func() {
			for ctx.Err() == nil {
				_, err := health.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
				if ctx.Err() != nil {
					return
				}
				c.unary.Add(1)
				if err != nil {
					c.unaryFailed.Add(1)
					c.Note("unary: %v", err)
				}
			}
		})
	}

	start := time.Now()
	exampletest.AwaitPID(t, "Pids streams", last, srv.PID())
	for range upgrades {
		exampletest.AwaitPID(t, "Pids streams", last, srv.Upgrade())
	}
	took := time.Since(start)
	cancel()
	wg.Wait()
	for _, conn := range conns {
		_ = conn.Close()
	}
	srv.Stop()

	t.Logf("%d upgrades in %v: %d unary calls, %d failed; %d streams opened (%d Pids, %d health Watch), %d messages; "+
		"%d ended by the drain (%d before a first message), %d abrupt ends; "+
		"grpc-go's transparent retries: %d calls refused by the server, %d never sent",
		upgrades, took.Round(time.Millisecond), c.unary.Load(), c.unaryFailed.Load(),
		c.opened.Load(), c.openedPids.Load(), c.opened.Load()-c.openedPids.Load(), c.messages.Load(),
		c.clean.Load(), c.empty.Load(), c.abrupt.Load(), c.refused.Load(), c.unsent.Load())
	for _, e := range c.List() {
		t.Error(e)
	}
	if c.unaryFailed.Load() != 0 || c.abrupt.Load() != 0 || c.refused.Load() != 0 {
		t.Errorf("%d failed unary calls, %d abrupt stream ends, %d calls refused by the server; want 0 each",
			c.unaryFailed.Load(), c.abrupt.Load(), c.refused.Load())
	}
	if c.unary.Load() == 0 {
		t.Error("no unary call completed")
	}
	// Each upgrade drained every Pids stream it found open.
	if got, want := c.cleanPids.Load(), int64(upgrades*streamers); got < want {
		t.Errorf("%d Pids streams ended by the drain, want at least %d", got, want)
	}
}

// counts are the clients' tallies.
type counts struct {
	unary, unaryFailed atomic.Int64
	opened, openedPids atomic.Int64
	messages           atomic.Int64
	clean, cleanPids   atomic.Int64 // ended by the drain
	empty              atomic.Int64 // ended by the drain before a first message
	abrupt             atomic.Int64
	refused, unsent    atomic.Int64 // transparent retries
	exampletest.Failures
}

// streamer keeps one server stream open on conn, opening a new one each
// time the drain ends it: a Pids.Watch stream, or a health Watch one.
type streamer struct {
	conn   *grpc.ClientConn
	health bool
	c      *counts
	pid    atomic.Int64 // the pid in the last Pids message
}

var healthWatch = &grpc.StreamDesc{StreamName: "Watch", ServerStreams: true}

func (s *streamer) run(ctx context.Context) {
	for ctx.Err() == nil {
		desc, method := &pidsDesc.Streams[0], watchMethod
		var req, msg any = &emptypb.Empty{}, &wrapperspb.StringValue{}
		if s.health {
			desc, method = healthWatch, healthpb.Health_Watch_FullMethodName
			req, msg = &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{}
		}
		err := s.stream(ctx, desc, method, req, msg)
		if ctx.Err() != nil {
			return // the test is over
		}
		if !isDrainEnd(err) {
			s.c.abrupt.Add(1)
			s.c.Note("stream %s: %v", method, err)
		}
	}
}

// stream opens one stream and receives until it ends, and returns how.
func (s *streamer) stream(ctx context.Context, desc *grpc.StreamDesc, method string, req, msg any) error {
	cs, err := s.conn.NewStream(ctx, desc, method, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	s.c.opened.Add(1)
	if !s.health {
		s.c.openedPids.Add(1)
	}
	if err := cs.SendMsg(req); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if err := cs.CloseSend(); err != nil {
		return fmt.Errorf("close send: %w", err)
	}
	for n := 0; ; n++ {
		err := cs.RecvMsg(msg)
		if err != nil {
			if isDrainEnd(err) {
				s.c.clean.Add(1)
				if !s.health {
					s.c.cleanPids.Add(1)
				}
				if n == 0 {
					s.c.empty.Add(1)
				}
			}
			return err
		}
		s.c.messages.Add(1)
		if sv, ok := msg.(*wrapperspb.StringValue); ok {
			var pid, gen int
			if _, err := fmt.Sscanf(sv.GetValue(), "pid %d generation %d", &pid, &gen); err != nil {
				return fmt.Errorf("message %q: %w", sv.GetValue(), err)
			}
			s.pid.Store(int64(pid))
		}
	}
}

// isDrainEnd reports whether err is the status a draining server ends its
// streams with (its trailers arrived). Transport failures are UNAVAILABLE
// too, but with grpc-go's own messages.
func isDrainEnd(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.Unavailable && strings.HasSuffix(st.Message(), ": "+drainMessage)
}

// transparentRetries counts the attempts grpc-go makes again by itself,
// which WithDisableRetry does not turn off. Two kinds: a stream whose
// HEADERS never left the client (it picked a connection just as its GOAWAY
// arrived or it closed: "the connection is draining", "transport is
// closing"), which the server never saw, is counted in unsent; one the
// server refused or that was lost with its connection after its headers
// were queued (RST_STREAM REFUSED_STREAM, above a GOAWAY's last stream id)
// is counted in refused, and noted.
type transparentRetries struct{ c *counts }

type rpcKey struct{}

type rpcInfo struct {
	method  string
	sent    atomic.Bool  // the current attempt's headers were queued
	lastErr atomic.Value // error of the last attempt that ended
}

// dialOptions install the counter; its interceptors give each call (not
// each attempt) an rpcInfo.
func (r transparentRetries) dialOptions() []grpc.DialOption {
	tag := func(ctx context.Context, method string) context.Context {
		return context.WithValue(ctx, rpcKey{}, &rpcInfo{method: method})
	}
	return []grpc.DialOption{
		grpc.WithStatsHandler(r),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(tag(ctx, method), method, req, reply, cc, opts...)
		}),
		grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(tag(ctx, method), desc, cc, method, opts...)
		}),
	}
}

func (r transparentRetries) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return ctx
}

func (r transparentRetries) HandleRPC(ctx context.Context, s stats.RPCStats) {
	info, ok := ctx.Value(rpcKey{}).(*rpcInfo)
	if !ok {
		return
	}
	switch s := s.(type) {
	case *stats.OutHeader:
		info.sent.Store(true)
	case *stats.End:
		if s.Error != nil {
			info.lastErr.Store(s.Error)
		}
	case *stats.Begin:
		sent := info.sent.Swap(false)
		switch {
		case !s.IsTransparentRetryAttempt:
		case sent:
			r.c.refused.Add(1)
			r.c.Note("%s refused and retried by grpc-go after: %v", info.method, info.lastErr.Load())
		default:
			r.c.unsent.Add(1)
		}
	}
}

func (r transparentRetries) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (r transparentRetries) HandleConn(context.Context, stats.ConnStats) {}
