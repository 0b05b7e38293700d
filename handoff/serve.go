package handoff

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"
)

// Serve registers s and runs s.Serve in a goroutine owned by the Upgrader
// once this generation is main: at once after Ready returned, otherwise
// when Ready makes it main. A successor thus accepts nothing before the
// hand-over, and a successor that fails never had a connection to drop
// (connections wait in the shared socket's backlog, or are taken by the
// predecessor). Wait drains s with s.Shutdown when the generation ends.
func (u *Upgrader) Serve(s Server) {
	u.trapServe()
	u.mu.Lock()
	defer u.mu.Unlock()
	u.servers = append(u.servers, s)
	if u.phase.accepting() {
		u.startLocked(s)
	}
}

// running is a server whose Serve was started.
type running struct {
	s    Server
	done chan struct{} // closed when its Serve returned
}

// startLocked starts s.Serve; called with u.mu held.
func (u *Upgrader) startLocked(s Server) {
	r := &running{s: s, done: make(chan struct{})}
	u.running = append(u.running, r)
	go func() {
		defer close(r.done)
		if err := s.Serve(); err != nil {
			select {
			case u.serveErr <- err:
			default:
			}
		}
	}()
}

// spell is one stretch of serving: from Ready (or a rollback) to the
// cut-over or stop that ends it.
type spell struct {
	end     chan struct{} // closed when the spell ends
	servers []*running    // the servers to drain; set before end is closed
	win     *window       // the watch window that ended it, nil for none
}

func newSpell() *spell { return &spell{end: make(chan struct{})} }

// endSpellLocked ends the current spell once: its servers are to drain,
// win (nil for none) is the watch window that ended it. Called with u.mu
// held.
func (u *Upgrader) endSpellLocked(win *window) {
	sp := u.spell
	if isClosed(sp.end) {
		return
	}
	sp.servers, sp.win = u.running, win
	close(sp.end)
}

// Wait blocks until the generation ends (handed over, stopped, or a server
// given to Serve failed), then drains every server under DrainTimeout and
// returns. It returns nil after a clean hand-over or stop, the server's
// error when one failed, or the drain's error (ctx.Err() of the deadline
// when servers had to be force-closed).
//
// With Config.WatchWindow, Wait drains the servers at the cut-over and
// returns when the window has passed; when the successor ends within it,
// the servers serve again (Renewer) and Wait goes on as before the upgrade.
//
// In a process that is PID 1 of its pid namespace (a container's
// entrypoint) and handed over, Wait does not return: the process stays as
// the namespace's init, reaping and passing signals on to the generations
// after it, and exits with the status of the last one (see the package
// doc, Containers).
func (u *Upgrader) Wait() error {
	for {
		u.mu.Lock()
		sp := u.spell
		u.mu.Unlock()
		var failed error
		select {
		case <-sp.end:
		case failed = <-u.serveErr:
			u.log.Error("server failed, stopping", "err", failed)
			u.Stop()
			<-sp.end
		}
		err := u.drain(sp)
		if failed == nil && sp.win != nil {
			<-sp.win.done
			if sp.win.rolledBack {
				continue // serving again, in a new spell
			}
		}
		u.closeControl()
		if failed != nil {
			return failed
		}
		if u.HandedOver() && os.Getpid() == 1 {
			// PID 1 of its namespace: its exit would kill the successor.
			u.serveAsInit()
		}
		return err
	}
}

func (u *Upgrader) successorPID() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.successor
}

// drain shuts the servers of sp down under DrainTimeout.
func (u *Upgrader) drain(sp *spell) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), u.cfg.drainTimeout())
	defer cancel()
	ctx = context.WithValue(ctx, drainKey{}, drainConfig{streamGrace: u.cfg.streamGrace(), newConnGrace: u.cfg.newConnGrace()})
	if sp.win != nil {
		ctx = withRenew(ctx)
	}
	errs := make([]error, len(sp.servers))
	var wg sync.WaitGroup
	for i, r := range sp.servers {
		wg.Go(func() { errs[i] = r.s.Shutdown(ctx) })
	}
	wg.Wait()
	for _, r := range sp.servers {
		<-r.done
	}
	err := errors.Join(errs...)
	u.log.Info("drained", "generation", u.gen, "took", time.Since(start), "err", err)
	return err
}
