//go:build !unix

package load

import "net"

type peekResult int

const (
	peekNothing peekResult = iota
	peekEOF
	peekBytes
)

// peekSocket: CheckIdle needs a Unix socket; elsewhere nothing is seen.
func peekSocket(net.Conn) peekResult { return peekNothing }
