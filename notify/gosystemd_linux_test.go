package notify

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/daemon"
)

// TestSameBytesAsGoSystemd: for the messages go-systemd's daemon package
// names, both packages put the same bytes on the wire, from the same pid.
func TestSameBytesAsGoSystemd(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		l := listenT(t, abstract)
		t.Setenv(EnvSocket, l.Socket())
		c, err := FromEnv()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, tt := range []struct {
			theirs string
			ours   func() error
		}{
			{daemon.SdNotifyReady, c.Ready},
			{daemon.SdNotifyStopping, c.Stopping},
			{daemon.SdNotifyWatchdog, c.Watchdog},
			{"STATUS=up\nERRNO=2", func() error { return c.Send("STATUS=up\nERRNO=2") }},
		} {
			sent, err := daemon.SdNotify(false, tt.theirs)
			if !sent || err != nil {
				t.Fatalf("SdNotify(%q): %v, %v", tt.theirs, sent, err)
			}
			want := receiveT(t, l)
			if err := tt.ours(); err != nil {
				t.Fatal(err)
			}
			got := receiveT(t, l)
			if got.State != want.State || got.PID != want.PID || got.PID != os.Getpid() {
				t.Errorf("ours %q from %d, go-systemd's %q from %d", got.State, got.PID, want.State, want.PID)
			}
		}

		// RELOADING: go-systemd leaves the assembly to the caller and ends
		// with a newline; the assignments are the same.
		if _, err := daemon.SdNotify(false, daemon.SdNotifyReloading+"\n"+daemon.SdNotifyMonotonicUsec()); err != nil {
			t.Fatal(err)
		}
		theirs := receiveT(t, l)
		if err := c.Reloading(); err != nil {
			t.Fatal(err)
		}
		ours := receiveT(t, l)
		for _, m := range []*Message{theirs, ours} {
			usec, _ := m.Lookup("MONOTONIC_USEC")
			if v, _ := m.Lookup("RELOADING"); v != "1" {
				t.Errorf("%q: no RELOADING=1", m.State)
			}
			if n, err := strconv.ParseInt(usec, 10, 64); err != nil || n <= 0 {
				t.Errorf("%q: MONOTONIC_USEC %q", m.State, usec)
			}
		}
		if strings.Count(ours.State, "\n") != 1 {
			t.Errorf("ours: %q", ours.State)
		}
	}

	// Without NOTIFY_SOCKET both do nothing and say so.
	os.Unsetenv(EnvSocket)
	if sent, err := daemon.SdNotify(false, daemon.SdNotifyReady); sent || err != nil {
		t.Errorf("go-systemd without a socket: %v, %v", sent, err)
	}
	c, err := FromEnv()
	if err != nil || c.Enabled() || c.Ready() != nil {
		t.Errorf("ours without a socket: %v %v", c.Enabled(), err)
	}
}

// TestWatchdogEnabledMatchesGoSystemd: on every WATCHDOG_USEC/WATCHDOG_PID
// input that both accept, WatchdogEnabled and go-systemd's
// SdWatchdogEnabled give the same duration. Inputs only go-systemd accepts
// are listed: we follow libsystemd and reject them.
func TestWatchdogEnabledMatchesGoSystemd(t *testing.T) {
	const unset = "<unset>"
	self := strconv.Itoa(os.Getpid())
	usecs := []string{unset, "", "1", "1000000", "30000000", "0", "-1", "abc", "+5", "9223372036854775807", "18446744073709551616"}
	pids := []string{unset, "", self, "1", strconv.Itoa(os.Getppid()), "abc", "0", "-3", "+" + self}
	both, onlyTheirs, onlyOurs := 0, []string{}, []string{}
	for _, usec := range usecs {
		for _, pid := range pids {
			setOrUnset(t, EnvWatchdogUsec, usec, unset)
			setOrUnset(t, EnvWatchdogPID, pid, unset)
			theirs, theirErr := daemon.SdWatchdogEnabled(false)
			ours, ourErr := WatchdogEnabled(WatchdogConfig{})
			in := EnvWatchdogUsec + "=" + strconv.Quote(usec) + " " + EnvWatchdogPID + "=" + strconv.Quote(pid)
			switch {
			case theirErr == nil && ourErr == nil:
				both++
				if theirs != ours {
					t.Errorf("%s: ours %v, go-systemd %v", in, ours, theirs)
				}
			case theirErr == nil:
				onlyTheirs = append(onlyTheirs, in)
			case ourErr == nil:
				onlyOurs = append(onlyOurs, in)
			}
		}
	}
	if len(onlyOurs) > 0 {
		t.Errorf("accepted only by us: %q", onlyOurs)
	}
	if both < 20 {
		t.Errorf("only %d inputs compared", both)
	}
	t.Logf("%d inputs agree; rejected by us, accepted by go-systemd: %q", both, onlyTheirs)
}

func setOrUnset(t *testing.T, k, v, unset string) {
	t.Setenv(k, "")
	if v == unset {
		os.Unsetenv(k)
	} else {
		os.Setenv(k, v)
	}
}
