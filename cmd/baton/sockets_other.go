//go:build !unix

package main

import (
	"github.com/batonhq/baton/handoff"
	"github.com/batonhq/baton/internal/supervisor"
)

// socketStatus names a socket: baton run, which holds them, is Linux only.
func socketStatus(s supervisor.Socket) handoff.SocketStatus {
	return handoff.SocketStatus{Name: s.Name, Kind: "file"}
}
