//go:build !linux

package handoff

import (
	"context"
	"net"
	"os"
)

// New returns ErrNotSupported on systems other than Linux.
func New(Config) (*Upgrader, error) { return nil, ErrNotSupported }

// Ready returns ErrNotSupported.
func (u *Upgrader) Ready() error { return ErrNotSupported }

// Upgrade returns ErrNotSupported.
func (u *Upgrader) Upgrade(context.Context) (int, error) { return 0, ErrNotSupported }

func (u *Upgrader) closeOS() {}

func (u *Upgrader) storeFDs() {}

type fdSet struct{}

func (*fdSet) listen(string, string, string) (net.Listener, error) { return nil, ErrNotSupported }
func (*fdSet) listenPacket(string, string, string) (net.PacketConn, error) {
	return nil, ErrNotSupported
}

func (*fdSet) file(string, func() (*os.File, error)) (*os.File, error) { return nil, ErrNotSupported }
func (*fdSet) close()                                                  {}

func (u *Upgrader) serveAsInit() {}
