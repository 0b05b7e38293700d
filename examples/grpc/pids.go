package main

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The Pids service is written by hand, without a .proto file or generated
// code: its messages are protobuf's well-known types, which the default
// codec carries, so any gRPC client can call it. In proto terms:
//
//	package baton.example;
//	service Pids {
//	  rpc Watch(google.protobuf.Empty) returns (stream google.protobuf.StringValue);
//	}
const (
	pidsService = "baton.example.Pids"
	// watchMethod is the full method name a client opens a stream on.
	watchMethod = "/" + pidsService + "/Watch"
	// watchInterval is the time between two messages of a Watch stream.
	watchInterval = 100 * time.Millisecond
)

// pidsServer is the service's handler type.
type pidsServer interface {
	Watch(*emptypb.Empty, grpc.ServerStream) error
}

// pidsDesc describes the Pids service to grpc.Server.RegisterService, and
// its Streams[0] to a client's grpc.ClientConn.NewStream.
var pidsDesc = grpc.ServiceDesc{
	ServiceName: pidsService,
	HandlerType: (*pidsServer)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Watch",
		Handler:       watchHandler,
		ServerStreams: true,
	}},
	Metadata: "pids.go",
}

func watchHandler(srv any, ss grpc.ServerStream) error {
	in := new(emptypb.Empty)
	if err := ss.RecvMsg(in); err != nil {
		return err
	}
	return srv.(pidsServer).Watch(in, ss)
}

// pids serves the Pids service; msg names this process.
type pids struct{ msg string }

// Watch sends msg at once and then every watchInterval until the stream's
// context ends: the client went away, or the generation drains (endAtDrain
// then turns the returned error into UNAVAILABLE).
func (p *pids) Watch(_ *emptypb.Empty, ss grpc.ServerStream) error {
	msg := wrapperspb.String(p.msg)
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for {
		if err := ss.SendMsg(msg); err != nil {
			return err
		}
		select {
		case <-ss.Context().Done():
			return status.FromContextError(ss.Context().Err()).Err()
		case <-t.C:
		}
	}
}
