package handoff

import "os"

// Serve registers s and runs s.Serve in a goroutine owned by the Upgrader
// once this generation serves: at once after Ready returned, otherwise
// when Ready makes it serve. A successor thus accepts nothing before its
// predecessor has paused (connections wait in the shared socket's
// backlog, or are taken by the predecessor), and a successor that fails
// before never had a connection to drop. The Upgrader drains s with
// s.Shutdown when the generation ends (handed over or stopped), whether
// or not Wait is called.
//
// A server registered after the drain started is never served.
func (u *Upgrader) Serve(s Server) {
	u.trapServe()
	u.mu.Lock()
	defer u.mu.Unlock()
	u.servers = append(u.servers, s)
	if u.phase.accepting() {
		u.startServersLocked()
	}
}

// Wait blocks until the generation has ended (handed over, stopped, or a
// server given to Serve failed, which stops it) and its servers have
// drained, then returns: nil after a clean hand-over or stop, the
// server's error when one failed, or the drain's error (ctx.Err() of the
// deadline when servers had to be force-closed). Wait only waits: the
// drain starts when the generation ends, called or not.
//
// With Config.WatchWindow the generation ends when the window has passed
// (its servers were paused meanwhile, not drained); a successor that ends
// within it is rolled back and Wait goes on waiting.
//
// In a process that is PID 1 of its pid namespace (a container's
// entrypoint) and handed over, Wait does not return: the process stays as
// the namespace's init, reaping and passing signals on to the generations
// after it, and exits with the status of the last one (see the package
// doc, Containers).
func (u *Upgrader) Wait() error {
	var failed error
	select {
	case <-u.drained:
	case failed = <-u.serveErr:
		u.log.Error("server failed, stopping", "err", failed)
		u.Stop()
		<-u.drained
	}
	u.closeControl()
	if failed != nil {
		return failed
	}
	if os.Getpid() == 1 {
		// PID 1 of its namespace: its exit would kill the successor.
		if u.HandedOver() {
			u.serveAsInit()
		}
		// Stopped in a watch window: the successor, told to stop too,
		// drains its requests first.
		u.waitSuccessors()
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.drainErr
}

func (u *Upgrader) successorPID() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.successor
}
