package handoff

import (
	"context"
	"time"
)

// Stop ends the generation gracefully: an upgrade in flight is abandoned
// (its successor killed), Stopping is closed, the manager is told
// STOPPING=1 when this generation is the main process, and Done is
// closed. A main generation that has not handed over goes on serving for
// Config.StopDelay between STOPPING=1 and Done; Stop returns when Done is
// closed. Called again while the delay runs, Stop ends the delay at once
// and returns. SIGTERM and SIGINT call it.
func (u *Upgrader) Stop() {
	u.mu.Lock()
	if isClosed(u.stopped) {
		if !u.delayCut {
			u.delayCut = true
			close(u.cutDelay)
		}
		u.mu.Unlock()
		return
	}
	close(u.stopped)
	wait := u.upgradeDone
	sayStopping := false
	switch u.phase {
	case phaseStarting:
		if u.parent != nil {
			// A successor asked to stop before it said READY declines
			// the hand-over: the predecessor sees the channel close and
			// keeps serving.
			_ = u.parent.Close()
		}
		_ = u.enterLocked(phaseStopped)
	case phaseAwaitingMain:
		// The predecessor's answer is awaited: on MAIN this process
		// becomes main just to say STOPPING=1 (becomeMain).
		_ = u.enterLocked(phaseStopped)
	case phaseProbation:
		// The predecessor still holds the main PID and rolls back at
		// once (window_linux.go).
		_, _ = u.parent.Write([]byte(msgStopping))
		_ = u.enterLocked(phaseStopped)
	case phaseWatching:
		// Main but no longer accepting: the window ends without a
		// rollback, the successor is told to stop (window_linux.go). When the
		// window's end is handing the main PID over, its outcome is
		// awaited first.
		if wait == nil {
			_ = u.enterLocked(phaseStopped)
			sayStopping = true
		}
	case phaseServing, phaseUpgrading:
		_ = u.enterLocked(phaseStopping)
	}
	u.mu.Unlock()
	u.cancel()
	if wait != nil {
		<-wait
	}
	u.mu.Lock()
	switch u.phase {
	case phaseWatching: // the hand-over at the window's end failed
		_ = u.enterLocked(phaseStopped)
		sayStopping = true
	case phaseServing: // rolled back while the stop waited
		_ = u.enterLocked(phaseStopping)
	}
	serving := u.phase == phaseStopping
	if serving || sayStopping {
		if err := u.mgr.Stopping(); err != nil {
			u.log.Warn("sd_notify", "err", err)
		}
	}
	u.mu.Unlock()
	if d := u.cfg.StopDelay; serving && d > 0 {
		u.log.Info("stop delay: serving on", "generation", u.gen, "delay", d)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-u.cutDelay:
			u.log.Info("stop delay cut short", "generation", u.gen)
		}
		t.Stop()
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if serving {
		u.removePIDFile()
		_ = u.enterLocked(phaseStopped) // refused: logged and counted
	}
}

// endLocked closes Done once and stops what only the main generation
// runs; an effect of entering handed over or stopped (enterLocked).
func (u *Upgrader) endLocked() {
	select {
	case <-u.done:
		return
	default:
	}
	close(u.done)
	u.stopWatchdog()
	if u.control != nil && u.phase != phaseHandedOver {
		// A draining generation keeps answering `baton status` until its
		// drain ends (closeControl).
		c := u.control
		u.control = nil
		// The request that ended this generation (a reload) is still to
		// be answered, and handlers may wait for u.mu: not here.
		u.wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), DefaultBarrierTimeout)
			defer cancel()
			_ = c.Shutdown(ctx)
		})
	}
}

// closeControl closes the control socket, if it is still open, once the
// requests in flight are answered.
func (u *Upgrader) closeControl() {
	u.mu.Lock()
	c := u.control
	u.control = nil
	u.mu.Unlock()
	if c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), DefaultBarrierTimeout)
		defer cancel()
		_ = c.Shutdown(ctx)
	}
}

// Close releases everything the Upgrader holds: signal handlers, the
// control socket, the kept copies of the sockets, the manager connection.
// It stops the generation first if Wait did not. Listeners and servers
// handed to the program are the program's to close.
func (u *Upgrader) Close() error {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil
	}
	u.closed = true
	u.mu.Unlock()
	u.Stop()
	u.closeControl()
	u.cancel()
	u.mu.Lock()
	u.closeOS()
	u.mu.Unlock()
	u.wg.Wait()
	u.mu.Lock()
	if u.stopDropTimer != nil {
		u.stopDropTimer()
	}
	u.mu.Unlock()
	u.fds.close()
	u.mu.Lock()
	defer u.mu.Unlock()
	var err error
	if u.parent != nil {
		_ = u.parent.Close()
	}
	if u.mgr != nil {
		err = u.mgr.Close()
	}
	return err
}
