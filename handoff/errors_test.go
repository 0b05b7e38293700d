package handoff

import (
	"errors"
	"strings"
	"testing"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/generation"
)

// The exported errors are this package's own values (none is an internal
// package's), match what `baton reload` reports through errors.Is, and
// speak in one style: no "handoff: " prefix in a sentinel (the calls that
// return them add it as context).
func TestSentinels(t *testing.T) {
	for _, tt := range []struct {
		name     string
		err, int error
	}{
		{"ErrInProgress", ErrInProgress, control.ErrInProgress},
		{"ErrStopping", ErrStopping, control.ErrStopping},
		{"ErrRolledBack", ErrRolledBack, control.ErrRolledBack},
		{"ErrNotSupported", ErrNotSupported, errors.ErrUnsupported},
	} {
		own := !errors.Is(tt.int, tt.err) // a value of its own: the general one does not match it
		if !own || !errors.Is(tt.err, tt.int) || tt.err.Error() != tt.int.Error() && tt.name != "ErrNotSupported" {
			t.Errorf("%s = %v: want a value of its own, matching %v", tt.name, tt.err, tt.int)
		}
	}
	sentinels := []error{
		ErrInProgress, ErrNotReady, ErrHandedOver, ErrStopping, ErrAborted, ErrReadyTimeout,
		ErrSuccessorExited, ErrRolledBack, ErrBadEnvironment, ErrProtocolVersion, ErrNotSupported,
	}
	for _, err := range sentinels {
		if strings.HasPrefix(err.Error(), "handoff: ") {
			t.Errorf("%q: a sentinel with the package prefix", err)
		}
	}
	if DefaultMaxDraining != generation.DefaultMaxDraining {
		t.Errorf("DefaultMaxDraining %d, the supervisor's %d", DefaultMaxDraining, generation.DefaultMaxDraining)
	}
	for _, o := range [][2]string{{OutcomeOK, generation.OK}, {OutcomeFailed, generation.Failed}, {OutcomeAbandoned, generation.Abandoned}, {OutcomeRolledBack, generation.RolledBack}} {
		if o[0] != o[1] {
			t.Errorf("outcome %q, the supervisor's %q", o[0], o[1])
		}
	}
}
