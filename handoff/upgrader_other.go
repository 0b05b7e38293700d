//go:build !linux

package handoff

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/batonhq/baton/activation"
)

// New returns an Upgrader that serves without upgrades (see the package
// doc, Other systems): Listen, ListenPacket and File bind and open afresh,
// Ready starts the servers, Wait drains them as on Linux when the
// generation stops (SIGTERM, SIGINT, Stop) or a server fails, and Upgrade
// returns an error wrapping ErrNotSupported. Sockets handed over in
// LISTEN_FDS cannot be taken here: New then fails.
func New(cfg Config) (*Upgrader, error) {
	set, err := activation.Receive() // reads and unsets the variables
	switch {
	case errors.Is(err, activation.ErrNotActivated):
	case err != nil:
		return nil, fmt.Errorf("handoff: %w", err)
	default:
		_ = set.Close()
		return nil, fmt.Errorf("handoff: inherited sockets: %w", ErrNotSupported)
	}
	return newPlain(cfg, &fdSet{})
}

// Ready starts the servers given to Serve and writes Config.PIDFile: there
// is no manager to tell and no predecessor to take over from.
func (u *Upgrader) Ready() error { return u.readyPlain() }

// Upgrade returns an error wrapping ErrNotSupported that says why: this
// generation keeps serving.
func (u *Upgrader) Upgrade(context.Context) (int, error) { return 0, errNoUpgrade }

// closeOS stops signal handling; see Close in handoff.go.
func (u *Upgrader) closeOS() {
	if u.stopSignals != nil {
		u.stopSignals()
		u.stopSignals = nil
	}
}

func (u *Upgrader) storeFDs() {}

func (u *Upgrader) serveAsInit() {}

func (u *Upgrader) waitSuccessors() {}

// fdSet binds afresh: nothing is inherited, nothing passed on, so no copy
// is kept.
type fdSet struct{}

func (*fdSet) listen(name, network, addr string) (net.Listener, error) {
	if err := activation.CheckName(name); err != nil {
		return nil, err
	}
	return net.Listen(network, addr)
}

func (*fdSet) listenPacket(name, network, addr string) (net.PacketConn, error) {
	if err := activation.CheckName(name); err != nil {
		return nil, err
	}
	return net.ListenPacket(network, addr)
}

func (*fdSet) file(name string, open func() (*os.File, error)) (*os.File, error) {
	if err := activation.CheckName(name); err != nil {
		return nil, err
	}
	return open()
}

func (*fdSet) close() {}

// window is a watch window; there are none without upgrades.
type window struct {
	done       chan struct{}
	rolledBack bool
}
