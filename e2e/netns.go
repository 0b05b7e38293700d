//go:build linux

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// dialWorkers is how many threads of the test process sit in a box's
// network namespace, creating sockets there.
const dialWorkers = 4

// nsDialer creates sockets in another network namespace. A socket belongs
// to the namespace of the thread that created it, for its whole life, so
// workers locked to threads that joined the box's namespace dial, and the
// connections they return are used from any goroutine.
type nsDialer struct {
	reqs chan dialReq
	quit chan struct{}
	wg   sync.WaitGroup
}

type dialReq struct {
	ctx           context.Context
	network, addr string
	res           chan<- dialRes
}

type dialRes struct {
	conn net.Conn
	err  error
}

func newNSDialer(pid int) (*nsDialer, error) {
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return nil, err
	}
	d := &nsDialer{reqs: make(chan dialReq), quit: make(chan struct{})}
	ready := make(chan error, dialWorkers)
	for range dialWorkers {
		d.wg.Add(1)
		go d.worker(int(ns.Fd()), ready)
	}
	var errs []error
	for range dialWorkers {
		errs = append(errs, <-ready)
	}
	ns.Close() // every worker has joined (or failed to)
	if err := errors.Join(errs...); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

func (d *nsDialer) worker(nsfd int, ready chan<- error) {
	defer d.wg.Done()
	// Never unlocked: the thread is in the box's network namespace, and a
	// goroutine that exits locked takes its thread with it.
	runtime.LockOSThread()
	if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
		ready <- fmt.Errorf("join network namespace: %w", err)
		return
	}
	ready <- nil
	var nd net.Dialer
	for {
		select {
		case <-d.quit:
			return
		case r := <-d.reqs:
			c, err := nd.DialContext(r.ctx, r.network, r.addr)
			r.res <- dialRes{c, err}
		}
	}
}

func (d *nsDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	res := make(chan dialRes, 1)
	select {
	case d.reqs <- dialReq{ctx, network, addr, res}:
	case <-d.quit:
		return nil, &net.OpError{Op: "dial", Net: network, Err: ErrBoxDown}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	r := <-res
	return r.conn, r.err
}

func (d *nsDialer) close() {
	close(d.quit)
	d.wg.Wait()
}

// Dial connects to addr in the box's network namespace (its loopback is not
// the host's). addr must be an IP address and port: a name would be
// resolved by another thread.
func (b *Box) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	b.dialOnce.Do(func() {
		b.dialer, b.dialErr = newNSDialer(b.pid)
	})
	if b.dialErr != nil {
		return nil, b.dialErr
	}
	return b.dialer.dial(ctx, network, addr)
}
