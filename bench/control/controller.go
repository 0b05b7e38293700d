package control

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Trigger starts one upgrade.
type Trigger interface {
	// Fire starts an upgrade of the service whose newest answering process
	// is cur. It returns the pid of the generation it asked to upgrade (the
	// one that will become old), or 0 when that is cur.
	Fire(ctx context.Context, cur int) (old int, err error)
}

// Signal sends Sig to the pid in PidFile when set (falling back to the
// current process when the file cannot be read), to Pid when set, or else
// to the current process.
type Signal struct {
	Sig     syscall.Signal
	Pid     int
	PidFile string
}

// Fire implements Trigger.
func (s Signal) Fire(_ context.Context, cur int) (int, error) {
	pid, old := target(s.Pid, s.PidFile, cur)
	if err := kill(pid, s.Sig); err != nil {
		return old, fmt.Errorf("signal %d: %w", pid, err)
	}
	return old, nil
}

// target picks the pid to address: the pid file's, the fixed one, or cur.
// old is the generation that will be replaced (0 when it is cur).
func target(fixed int, pidfile string, cur int) (pid, old int) {
	if pidfile != "" {
		if p, err := ReadPidfile(pidfile); err == nil {
			return p, p
		}
	}
	if fixed != 0 {
		return fixed, 0
	}
	return cur, cur
}

// Command runs a command and waits for it, every "{pid}" in Args replaced
// by the pid chosen as for Signal. A non-zero exit is an error carrying the
// command's output.
type Command struct {
	Args    []string
	Pid     int
	PidFile string
}

// Fire implements Trigger.
func (c Command) Fire(ctx context.Context, cur int) (int, error) {
	if len(c.Args) == 0 {
		return 0, errors.New("command trigger: no command")
	}
	pid, old := target(c.Pid, c.PidFile, cur)
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		args[i] = strings.ReplaceAll(a, "{pid}", strconv.Itoa(pid))
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return old, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return old, nil
}

// Func adapts a function to Trigger.
type Func func(ctx context.Context, cur int) (int, error)

// Fire implements Trigger.
func (f Func) Fire(ctx context.Context, cur int) (int, error) { return f(ctx, cur) }

// DefaultHandoffTimeout bounds the wait for a new process to answer after a
// trigger, when Config.HandoffTimeout is 0.
const DefaultHandoffTimeout = 5 * time.Second

// Config describes a series of upgrades.
type Config struct {
	Trigger Trigger
	Tracker *Tracker
	// Watcher, when set, watches each old generation from its handover.
	Watcher *Watcher

	// Every is the period between triggers. When 0 the next trigger fires
	// as soon as the previous upgrade handed over (and, with MaxDraining,
	// fewer than MaxDraining old generations are alive).
	Every       time.Duration
	MaxDraining int
	// Settle is a pause after the MaxDraining wait, for a peer that must
	// notice its parent's exit before it accepts an upgrade.
	Settle      time.Duration
	Until       time.Duration // no trigger after this long; 0: no limit
	Count       int           // stop after this many upgrades handed over; 0: no limit
	MaxAttempts int           // stop after this many triggers; 0: no limit

	// PidFile, when set, is the service's pid file: after a handover the
	// next trigger waits (up to HandoffTimeout) until it names the new
	// process, so that a signal never goes to a generation that already
	// handed over.
	PidFile string

	// HandoffTimeout bounds the wait for the new process after Fire
	// returns; with Every set it is at most Every (an upgrade not done by
	// the next tick failed).
	HandoffTimeout time.Duration
}

// Upgrade is the outcome of one trigger.
type Upgrade struct {
	At      time.Time // just before the trigger fired
	Old     int       // the current process when it fired
	New     int       // the first new process to answer; 0 if none did
	Handoff time.Duration
	Err     error
}

// HandedOver is the moment the new process's first answer ended.
func (u Upgrade) HandedOver() time.Time { return u.At.Add(u.Handoff) }

// ErrNoHandoff is the error of an upgrade after which no new process
// answered in time.
var ErrNoHandoff = errors.New("no new process answered")

// Run fires upgrades until a limit in cfg is reached or ctx is done, and
// returns every upgrade. The load must be running: the new process is known
// only by its answers.
func Run(ctx context.Context, cfg Config) []Upgrade {
	timeout := cfg.HandoffTimeout
	if timeout <= 0 {
		timeout = DefaultHandoffTimeout
	}
	if cfg.Every > 0 {
		timeout = min(timeout, cfg.Every)
	}
	var ups []Upgrade
	handed := 0
	start := time.Now()
	next := start
	for ctx.Err() == nil {
		if cfg.Count > 0 && handed >= cfg.Count || cfg.MaxAttempts > 0 && len(ups) >= cfg.MaxAttempts {
			break
		}
		if cfg.Every > 0 {
			// The next tick, or now when an upgrade overran the period:
			// late triggers are not fired in a burst.
			next = next.Add(cfg.Every)
			if now := time.Now(); next.Before(now) {
				next = now
			}
			if !sleepUntil(ctx, next) {
				break
			}
		} else if cfg.MaxDraining > 0 && cfg.Watcher != nil {
			waited := false
			for cfg.Watcher.Live() >= cfg.MaxDraining {
				waited = true
				if !sleepUntil(ctx, time.Now().Add(time.Millisecond)) {
					return ups
				}
			}
			if waited && cfg.Settle > 0 && !sleepUntil(ctx, time.Now().Add(cfg.Settle)) {
				break
			}
		}
		if cfg.Until > 0 && time.Since(start) >= cfg.Until {
			break
		}
		cur := cfg.Tracker.Current()
		if cur == 0 {
			var err error
			if cur, _, err = cfg.Tracker.WaitNew(ctx, 0, time.Time{}); err != nil {
				break
			}
		}
		up := Upgrade{At: time.Now(), Old: cur}
		var old int
		old, up.Err = cfg.Trigger.Fire(ctx, cur)
		if old != 0 {
			up.Old = old
		}
		cur = up.Old
		if up.Err == nil {
			// The wait starts when Fire returns: a command trigger may
			// return only once the upgrade is done, a restart only once
			// the old process is gone.
			wctx, cancel := context.WithTimeout(ctx, timeout)
			pid, first, err := cfg.Tracker.WaitNew(wctx, cur, up.At)
			cancel()
			if err != nil {
				up.Err = fmt.Errorf("%w within %v: %w", ErrNoHandoff, timeout, err)
			} else {
				up.New, up.Handoff = pid, first.Sub(up.At)
				handed++
				if cfg.Watcher != nil {
					cfg.Watcher.Watch(cur)
				}
				if cfg.PidFile != "" {
					waitPidfile(ctx, cfg.PidFile, pid, timeout)
				}
			}
		}
		ups = append(ups, up)
	}
	return ups
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// waitPidfile waits until path names pid, or for at most limit.
func waitPidfile(ctx context.Context, path string, pid int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if p, err := ReadPidfile(path); err == nil && p == pid {
			return
		}
		if !sleepUntil(ctx, time.Now().Add(time.Millisecond)) {
			return
		}
	}
}
