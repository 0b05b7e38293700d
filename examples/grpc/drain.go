package main

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// drainMessage ends the status message of a stream ended by the drain.
const drainMessage = "draining: reopen the stream"

// endAtDrain returns a stream interceptor that ends server streams when the
// generation drains. GracefulStop waits for every stream, and a long-lived
// one (Pids.Watch, the health service's Watch) would otherwise hold the
// drain until its deadline and then end in a transport reset.
//
// The handler's context is cancelled when drain ends (at once for a stream
// opened later). A handler that then returns an error ends its stream with
// codes.Unavailable and "<self>: "+drainMessage: the status gRPC defines as
// transient, which a client answers by opening the stream again. That
// stream reaches the next generation, since GracefulStop has sent GOAWAY on
// this one's connections and new streams go to a new connection (a stream
// opened on an old connection before its GOAWAY arrived ends the same way
// at once). A handler that returns nil keeps its OK; a stream the client
// cancelled keeps its own status; a handler that failed on its own just as
// the drain began gets UNAVAILABLE too.
func endAtDrain(drain context.Context, self string) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, cancel := context.WithCancel(ss.Context())
		defer cancel()
		stop := context.AfterFunc(drain, cancel)
		err := handler(srv, &drainingStream{ServerStream: ss, ctx: ctx})
		drained := !stop() // the drain, not the handler's return, cancelled ctx
		if err != nil && drained && ss.Context().Err() == nil {
			return status.Error(codes.Unavailable, self+": "+drainMessage)
		}
		return err
	}
}

// drainingStream is a grpc.ServerStream whose context also ends at the
// drain.
type drainingStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *drainingStream) Context() context.Context { return s.ctx }
