package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/batonhq/baton/notify"
)

// Supervisor runs CMD and replaces it on upgrade. Create it with New, run it
// with Run; Upgrade, Scale, Signal, PID and Stats may be called from any
// goroutine while Run runs.
type Supervisor struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	running  bool
	stopping chan struct{} // closed when Run begins to stop
	stopped  bool          // Stop was called
	cut      chan struct{} // non-nil while a stop delay runs; closed to end it
	ended    chan struct{} // closed when Run begins its return
	byPID    map[int]*child
	slots    []*slot   // the serving set: one CMD per slot, nil while vacant
	target   int       // the pool's wanted size (Scale)
	op       string    // the operation changing the serving set, "" when none
	window   *window   // the watch window running, if any
	version  int       // upgrades started
	retired  []*child  // replaced CMDs, oldest first (those still draining at the last upgrade)
	history  []Outcome // the last HistoryLen upgrades
	stats    Stats
	idle     chan struct{} // an operation finished (buffered 1)
	exits    chan struct{} // a CMD exited (buffered 1)
	poke     chan struct{} // the pool's size changed (buffered 1)
	trigger  chan struct{} // asynchronous upgrade request (buffered 1)
	notify   *notify.Listener
	reaper   *reaper
	wg       sync.WaitGroup // goroutines owned by Run
}

// Run starts CMD (Workers copies of it), waits until it is ready and
// supervises it until ctx is done (then every CMD gets SIGTERM, and SIGKILL
// after Drain, and Run returns nil) or the serving CMD exits by itself (Run
// returns an *ExitError; a pool restarts its workers instead and returns
// only after Stop). A first CMD that does not become ready is returned as
// a *StartError.
func (s *Supervisor) Run(ctx context.Context) (err error) {
	if err := s.open(); err != nil {
		return err
	}
	defer s.close()

	s.manager("STATUS=starting " + s.cfg.Args[0])
	if err := s.startPool(ctx); err != nil {
		s.mu.Lock()
		stopped := s.stopped
		s.mu.Unlock()
		if stopped {
			return nil // stopped before anything served
		}
		return err
	}

	var watch <-chan time.Time
	var w *watcher
	if s.cfg.Watch != "" {
		w = newWatcher(s.cfg.Watch)
		t := time.NewTicker(s.cfg.WatchInterval)
		defer t.Stop()
		watch = t.C
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	pending := false
	for {
		done, wake, err := s.check(ctx)
		if done {
			return err
		}
		if wake.IsZero() {
			timer.Stop()
		} else {
			timer.Reset(time.Until(wake))
		}
		select {
		case <-ctx.Done():
			s.stopAll("STOPPING=1\nSTATUS=stopping")
			return nil
		case <-s.exits:
		case <-s.poke:
		case <-timer.C:
		case <-s.trigger:
			pending = !s.upgradeAsync(ctx)
		case <-s.idle:
			if pending {
				pending = !s.upgradeAsync(ctx)
			}
		case <-watch:
			if w.changed() {
				s.log.Info("watched file changed", "path", s.cfg.Watch)
				pending = !s.upgradeAsync(ctx)
			}
		}
	}
}

// startPool starts the first CMDs, all at once, and makes them the serving
// set once every one is ready.
func (s *Supervisor) startPool(ctx context.Context) error {
	n := s.cfg.Workers
	cs, err := s.startBatch(ctx, 0, n, 0)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.slots = make([]*slot, n)
	for i, c := range cs {
		s.slots[i] = &slot{c: c}
		_ = c.to(stateServing)
	}
	s.mu.Unlock()
	s.manager("READY=1\n" + s.statusLine())
	for _, c := range cs {
		s.log.Info("ready", "pid", c.pid, "generation", c.n)
	}
	return nil
}

// check acts on what changed while no operation runs: a CMD that exited,
// a stop, a new pool size, a restart due. It returns done with Run's
// result when the service has ended, and when the next restart is due.
func (s *Supervisor) check(ctx context.Context) (done bool, wake time.Time, err error) {
	s.mu.Lock()
	stopping := s.isStoppingLocked()
	if s.op != "" && !stopping {
		s.mu.Unlock()
		return false, time.Time{}, nil
	}
	if !s.cfg.pool() {
		c := s.slots[0].c
		s.mu.Unlock()
		if !isClosed(c.done) {
			return false, time.Time{}, nil
		}
		return true, time.Time{}, s.ended1(ctx, c)
	}
	if stopping {
		var last *child
		for _, sl := range s.slots {
			switch c := sl.c; {
			case c == nil:
			case !isClosed(c.done):
				s.mu.Unlock()
				return false, time.Time{}, nil
			case last == nil || last.status == (ExitStatus{}):
				last = c
			}
		}
		s.mu.Unlock()
		s.stopAll("STOPPING=1\nSTATUS=stopped")
		if last == nil {
			return true, time.Time{}, nil
		}
		return true, time.Time{}, &ExitError{PID: last.pid, Status: last.status}
	}
	return false, s.poolCheck(ctx), nil
}

// ended1 is the end of a single CMD's supervision: the serving CMD exited.
func (s *Supervisor) ended1(ctx context.Context, c *child) error {
	level := slog.LevelWarn
	if s.Stopping() {
		level = slog.LevelInfo
	}
	s.log.Log(ctx, level, "serving process exited", "pid", c.pid, "status", c.status.String())
	s.stopAll(fmt.Sprintf("STOPPING=1\nSTATUS=pid %d: %s", c.pid, c.status))
	return &ExitError{PID: c.pid, Status: c.status}
}

// open allocates what Run needs: the notify socket and the reaper.
func (s *Supervisor) open() error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("supervisor: Run called twice")
	}
	s.running = true
	s.stopping = make(chan struct{})
	s.ended = make(chan struct{})
	s.cut = nil
	s.retired = nil
	s.mu.Unlock()

	for _, sk := range s.cfg.Sockets {
		if s.cfg.Front != nil {
			break // the front's, in non-blocking mode
		}
		if err := setBlocking(sk.File); err != nil {
			return fmt.Errorf("socket %s: %w", sk.Name, err)
		}
	}
	addr := s.cfg.NotifyAddress
	if addr == "" {
		addr = defaultNotifyAddress()
	}
	nc, err := notify.Listen(addr)
	if err != nil {
		return err
	}
	s.notify = nc
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.readNotify()
	}()
	if s.cfg.ReapOrphans {
		if err := s.startReaper(); err != nil {
			s.close()
			return err
		}
	}
	return nil
}

// close undoes open after every CMD has exited.
func (s *Supervisor) close() {
	s.mu.Lock()
	closeOnce(s.stopping)
	close(s.ended) // no stop delay starts from now on
	s.mu.Unlock()
	_ = s.notify.Close()
	s.stopReaper()
	s.wg.Wait()
	s.mu.Lock()
	s.running = false
	s.slots = nil
	s.mu.Unlock()
}

// stopAll sends SIGTERM to every CMD still running and waits for them,
// with SIGKILL after Drain. A front drains its clients first.
func (s *Supervisor) stopAll(state string) {
	s.mu.Lock()
	closeOnce(s.stopping)
	s.mu.Unlock()
	s.manager(state)
	s.frontShutdown()
	s.mu.Lock()
	all := make([]*child, 0, len(s.byPID))
	for _, c := range s.byPID {
		_ = c.to(stateDraining)
		all = append(all, c)
	}
	s.mu.Unlock()
	for _, c := range all {
		_ = c.signal(syscall.SIGTERM)
	}
	t := time.NewTimer(s.cfg.Drain)
	defer t.Stop()
	for _, c := range all {
		select {
		case <-c.done:
		case <-t.C:
			for _, c := range all {
				s.kill(c)
			}
			<-c.done
		}
	}
	for _, c := range all {
		<-c.done
	}
}

// Trigger asks for an upgrade without waiting for it (SIGHUP). Requests
// made while an upgrade runs are merged into one more upgrade after it.
func (s *Supervisor) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Signal sends sig to the serving CMDs' pids (not to their process groups).
func (s *Supervisor) Signal(sig os.Signal) error {
	cs := s.servingSet()
	if len(cs) == 0 {
		return ErrNotRunning
	}
	return signalAll(cs, sig)
}

// Stop sends sig to the serving CMDs' pids and ends the supervision: an
// upgrade in flight is abandoned (its new CMD stopped), no other starts,
// and Run returns once the serving CMDs have exited, with their status.
// This is how a SIGTERM to `baton run` is forwarded. With
// Config.StopDelay, a first SIGTERM or SIGINT is sent only after the delay
// (see there); a Stop during the delay ends it and sends its own sig at
// once. With a front, a first SIGTERM or SIGINT goes only once the front
// has drained its clients (Front.Shutdown, up to Drain): Stop returns
// before.
func (s *Supervisor) Stop(sig os.Signal) error {
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return ErrNotRunning
	}
	first := !s.stopped
	s.stopped = true
	closeOnce(s.stopping)
	cs := s.servingSetLocked()
	if len(cs) == 0 {
		s.mu.Unlock()
		return nil // the first start sees stopping and gives up
	}
	if d := s.cfg.StopDelay; first && d > 0 && (sig == syscall.SIGTERM || sig == syscall.SIGINT) && !isClosed(s.ended) {
		s.cut = make(chan struct{})
		s.wg.Add(1)
		go s.delayStop(d, sig, s.cut)
		s.mu.Unlock()
		s.manager(fmt.Sprintf("STOPPING=1\nSTATUS=stopping: pid %d serves for another %s", cs[0].pid, d))
		s.log.Info("stop delay: the serving process goes on serving", "pid", cs[0].pid, "delay", d, "signal", sig.String())
		return nil
	}
	if s.cut != nil {
		// A second stop: the delay ends, and this signal goes now.
		close(s.cut)
		s.cut = nil
		s.log.Info("stop delay cut short", "signal", sig.String())
	} else if first && s.cfg.Front != nil && graceful(sig) && !isClosed(s.ended) {
		// The front drains its clients first; a second stop does not wait.
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.frontShutdown()
			if err := signalAll(cs, sig); err != nil {
				s.log.Warn("forward signal", "err", err)
			}
		}()
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	return signalAll(cs, sig)
}

// graceful reports whether sig asks CMD to stop gracefully.
func graceful(sig os.Signal) bool { return sig == syscall.SIGTERM || sig == syscall.SIGINT }

// delayStop sends sig to the serving CMDs after d, unless Stop cut the
// delay (and sent a signal itself) or Run returned.
func (s *Supervisor) delayStop(d time.Duration, sig os.Signal, cut chan struct{}) {
	defer s.wg.Done()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-cut:
		return
	case <-s.ended:
		return
	}
	s.mu.Lock()
	if s.cut != cut {
		s.mu.Unlock()
		return // cut at the same moment
	}
	s.cut = nil
	cs := s.servingSetLocked()
	s.mu.Unlock()
	s.frontShutdown()
	for _, c := range cs {
		s.log.Info("stop delay over: forwarding the signal", "pid", c.pid, "signal", sig.String())
	}
	if err := signalAll(cs, sig); err != nil {
		s.log.Warn("forward signal", "err", err)
	}
}

func signalAll(cs []*child, sig os.Signal) error {
	var errs []error
	for _, c := range cs {
		if err := c.signal(sig); err != nil {
			errs = append(errs, fmt.Errorf("pid %d: %w", c.pid, err))
		}
	}
	return errors.Join(errs...)
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func closeOnce(c chan struct{}) {
	if !isClosed(c) {
		close(c)
	}
}

// isStoppingLocked reports whether Stop was called or Run began to stop.
// s.mu is held.
func (s *Supervisor) isStoppingLocked() bool {
	return s.stopped || isClosed(s.stopping)
}

// Stopping reports whether a stop was requested.
func (s *Supervisor) Stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.isStoppingLocked()
}
