package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/batonhq/baton/notify"
)

// readNotify dispatches the CMDs' notify messages until the socket closes.
func (s *Supervisor) readNotify() {
	for {
		m, err := s.notify.Receive(context.Background())
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			s.log.Warn("notify message dropped", "err", err)
			continue
		}
		_ = m.Close() // no fd store here: passed fds are closed
		s.dispatch(m)
	}
}

func (s *Supervisor) dispatch(m *notify.Message) {
	s.mu.Lock()
	c := s.byPID[m.PID]
	// The first CMD (a pool's first worker) speaks for the service from
	// its start on; a new one only once it has taken over.
	current := c != nil && (len(s.slots) == 0 || s.slots[0].c == c)
	if c == nil {
		s.stats.ForeignNotify++
	} else if v, ok := m.Lookup("STATUS"); ok {
		c.lastStatus = v
	}
	s.mu.Unlock()
	if c == nil {
		s.log.Debug("notify message from a process that is not a CMD", "pid", m.PID)
		return
	}
	if v, _ := m.Lookup("READY"); v == "1" {
		c.markReady()
	}
	// The serving CMD's own state goes to the manager; READY, RELOADING,
	// STOPPING and MAINPID are the supervisor's to say.
	var fwd []string
	for _, k := range []string{"STATUS", "WATCHDOG", "EXTEND_TIMEOUT_USEC", "ERRNO"} {
		if v, ok := m.Lookup(k); ok && (current || k == "EXTEND_TIMEOUT_USEC") {
			fwd = append(fwd, k+"="+v)
		}
	}
	if len(fwd) > 0 {
		s.manager(strings.Join(fwd, "\n"))
	}
}

// defaultNotifyAddress is a fresh abstract address: the random part keeps
// two supervisors that are both PID 1 of their own pid namespaces apart when
// they share a network namespace.
func defaultNotifyAddress() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "@baton/notify/" + strconv.Itoa(os.Getpid()) + "/" + hex.EncodeToString(b[:])
}
