package handoff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/batonhq/baton/internal/control"
	"golang.org/x/sys/unix"
)

// Status returns what this generation knows of the service; see Status.
// It asks each older generation still draining for its connection count
// over its control socket (a quarter second at most each).
func (u *Upgrader) Status() Status {
	u.mu.Lock()
	u.takeHistoryLocked()
	st := Status{
		PID:         os.Getpid(),
		Generation:  u.gen,
		State:       u.stateLocked(),
		Started:     u.startedAt,
		Exe:         u.exe,
		Connections: u.connectionsLocked(),
		Upgrades:    append([]UpgradeRecord{}, u.hist.Upgrades...),
		Counters: Counters{
			UpgradesOK: u.hist.OK, UpgradesFailed: u.hist.Failed, UpgradesAbandoned: u.hist.Abandoned, UpgradesRolledBack: u.hist.RolledBack,
			HandoffSeconds: []float64{},
			Handoff:        u.hist.Handoff.clone(),
			DrainSeconds:   append([]float64{}, u.drainSeconds...),
		},
	}
	if !u.drainSince.IsZero() {
		st.DrainSince, st.DrainDeadline = u.drainSince, u.drainSince.Add(u.cfg.drainTimeout())
	}
	switch u.phase {
	case phaseWatching:
		st.Watch = &WatchStatus{Role: "watching", PID: u.successor, Generation: u.gen + 1, Until: u.watchUntil}
	case phaseProbation:
		st.Watch = &WatchStatus{Role: "probation", PID: u.parentPID, Generation: u.gen - 1}
	}
	var older []procRef
	if u.phase != phaseHandedOver {
		for _, p := range u.draining {
			if p.pid != 1 { // PID 1 stays as the namespace's init: not draining
				older = append(older, p)
			}
		}
	}
	u.mu.Unlock()
	st.Sockets = u.fds.status()
	for _, r := range st.Upgrades {
		if r.Outcome == OutcomeOK {
			st.Counters.HandoffSeconds = append(st.Counters.HandoffSeconds, r.Duration.Seconds())
		}
	}
	st.Draining = drainStatus(older)
	return st
}

// drainStatus asks the generations of list still running for their status.
func drainStatus(list []procRef) []DrainStatus {
	out := make([]DrainStatus, len(list))
	var wg sync.WaitGroup
	for i, p := range list {
		out[i] = DrainStatus{PID: p.pid, Generation: p.gen, Connections: -1}
		if !p.running() {
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
			defer cancel()
			b, err := control.Status(ctx, p.pid)
			var theirs Status
			if err != nil || json.Unmarshal(b, &theirs) != nil {
				return
			}
			out[i].Connections, out[i].Since, out[i].Deadline = theirs.Connections, theirs.DrainSince, theirs.DrainDeadline
		})
	}
	wg.Wait()
	live := out[:0]
	for i, p := range list {
		if p.running() {
			live = append(live, out[i])
		}
	}
	return live
}

// recordFailure adds a failed or abandoned upgrade to the history; called
// with u.mu held.
func (u *Upgrader) recordFailure(err error) {
	u.takeHistoryLocked()
	r := UpgradeRecord{Generation: u.gen + 1, Outcome: OutcomeFailed, Reason: err.Error(), Started: u.upgradeStart, Duration: time.Since(u.upgradeStart)}
	switch {
	case errors.Is(err, ErrStopping):
		r.Outcome = OutcomeAbandoned
	case errors.Is(err, ErrRolledBack):
		r.Outcome = OutcomeRolledBack
	}
	var ue *UpgradeError
	if errors.As(err, &ue) {
		r.Generation, r.PID = ue.Generation, ue.PID
	}
	u.hist.add(r)
}

// recordHandOver adds this generation's own upgrade, from its request in
// the predecessor to now, the hand-over; called with u.mu held.
func (u *Upgrader) recordHandOver(self int) {
	u.takeHistoryLocked()
	r := UpgradeRecord{Generation: u.gen, PID: self, Outcome: OutcomeOK, Started: u.upgradeStart}
	if !u.upgradeStart.IsZero() {
		r.Duration = u.becameMain.Sub(u.upgradeStart)
	}
	u.hist.add(r)
}

// servingStatus is the STATUS= line of a generation that became main.
func (u *Upgrader) servingStatus(self int) string {
	u.takeHistoryLocked()
	if u.parent == nil || u.upgradeStart.IsZero() {
		return fmt.Sprintf("serving, generation %d, pid %d", u.gen, self)
	}
	return fmt.Sprintf("serving, generation %d, pid %d, upgraded in %s", u.gen, self, u.becameMain.Sub(u.upgradeStart).Round(100*time.Microsecond))
}

// historyEnv is envHistory's value for a successor.
func (u *Upgrader) historyEnv() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.takeHistoryLocked()
	b, err := json.Marshal(struct {
		history
		Started int64 `json:"started_ns"`
	}{u.hist, u.upgradeStart.UnixNano()})
	if err != nil {
		return ""
	}
	return string(b)
}

// readHistory takes the predecessor's history. It is information only: a
// value that does not parse is logged and dropped, not an error. It is
// parsed in the background (encoding/json's first use costs a starting
// process a few hundred microseconds, which would come before READY) and
// taken by takeHistoryLocked.
func (u *Upgrader) readHistory(v string) {
	if v == "" {
		return
	}
	done := make(chan struct{})
	u.histParsed = done
	go func() {
		defer close(done)
		var h struct {
			history
			Started int64 `json:"started_ns"`
		}
		if err := json.Unmarshal([]byte(v), &h); err != nil {
			u.log.Warn("upgrade history from the predecessor dropped", "err", err)
			return
		}
		if n := len(h.Upgrades); n > MaxHistory {
			h.Upgrades = h.Upgrades[n-MaxHistory:]
		}
		u.histIn = h.history
		if h.Started > 0 {
			u.histStart = time.Unix(0, h.Started)
		}
	}()
}

// takeHistoryLocked waits for the predecessor's history (readHistory) and
// makes it this generation's, once: everything that reads or writes hist
// or upgradeStart calls it first, with u.mu held.
func (u *Upgrader) takeHistoryLocked() {
	if u.histParsed == nil {
		return
	}
	<-u.histParsed
	u.histParsed = nil
	u.hist, u.upgradeStart = u.histIn, u.histStart
	u.histIn = history{}
}

// watchDrain records how long the predecessor pid drains: from now, the
// hand-over, to its exit. The goroutine ends with the process's context.
func (u *Upgrader) watchDrain(pid int) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			// Gone (and reaped) already: nothing holds the sockets set
			// aside at Ready but this process.
			u.fds.closeDropped()
		}
		return
	}
	since := time.Now()
	u.wg.Go(func() {
		defer unix.Close(fd)
		for u.ctx.Err() == nil {
			n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 200)
			if err != nil && err != unix.EINTR {
				return
			}
			if n > 0 {
				// Nothing holds the sockets set aside at Ready any more
				// but this process: they close now (fds_linux.go).
				u.fds.closeDropped()
				u.mu.Lock()
				u.drainSeconds = append(u.drainSeconds, time.Since(since).Seconds())
				if k := len(u.drainSeconds); k > MaxHistory {
					u.drainSeconds = append(u.drainSeconds[:0:0], u.drainSeconds[k-MaxHistory:]...)
				}
				u.mu.Unlock()
				return
			}
		}
	})
}

// status lists the sockets and files passed on.
func (s *fdSet) status() []SocketStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SocketStatus, 0, len(s.entries))
	for _, e := range s.entries {
		st := SocketStatus{Name: e.name, Kind: "file"}
		if sa, err := sockname(e.file); err == nil {
			st.Addr = sockaddrString(sa)
			st.Kind = sockKind(sa, e.kind)
		}
		out = append(out, st)
	}
	return out
}

func sockKind(sa unix.Sockaddr, typ int) string {
	switch sa.(type) {
	case *unix.SockaddrInet4, *unix.SockaddrInet6:
		if typ == unix.SOCK_DGRAM {
			return "udp"
		}
		return "tcp"
	case *unix.SockaddrUnix:
		switch typ {
		case unix.SOCK_DGRAM:
			return "unixgram"
		case unix.SOCK_SEQPACKET:
			return "unixpacket"
		}
		return "unix"
	case *unix.SockaddrNetlink:
		return "netlink"
	}
	return "socket " + strconv.Itoa(typ)
}
