package notify

import (
	"errors"
	"os"
	"strings"
)

// Message is one datagram received by a Listener: the manager's view of a
// notification.
type Message struct {
	// State is the datagram exactly as sent: newline-separated KEY=VALUE
	// assignments.
	State string

	// PID, UID and GID identify the sender as the kernel saw it
	// (SCM_CREDENTIALS), not as it claims.
	PID, UID, GID int

	// Files are the fds that came with the datagram (SCM_RIGHTS), in order,
	// close-on-exec. They belong to whoever holds the Message: Close them,
	// pass them on (Client.SendFiles), or keep them.
	Files []*os.File
}

// Lookup returns the value of the first KEY= assignment in the message,
// as the manager reads it.
func (m *Message) Lookup(key string) (string, bool) {
	return LookupState(m.State, key)
}

// Close closes the message's files.
func (m *Message) Close() error {
	var errs []error
	for _, f := range m.Files {
		errs = append(errs, f.Close())
	}
	m.Files = nil
	return errors.Join(errs...)
}

// LookupState returns the value of the first KEY= line in state. Lines are
// separated by '\n'; a line without '=' assigns nothing.
func LookupState(state, key string) (string, bool) {
	for line := range strings.SplitSeq(state, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}
