package supervisor

import (
	"errors"
	"fmt"
	"slices"
)

// childState is the phase of one CMD's life. Supervisor.mu guards it, and
// every change goes through (*child).to, which refuses a change the table
// does not allow (doc.go has the same table).
type childState int

const (
	// stateStarting: started, not ready yet. To serving (ready), draining
	// (a failed or abandoned start), exited.
	stateStarting childState = iota
	// stateServing: ready, in the serving set. To standby (replaced with
	// a watch window), draining (replaced, rolled back, scaled down,
	// stopped), exited (a pool restarts it).
	stateServing
	// stateStandby: replaced, but kept running, and accepting on the
	// shared sockets, for the watch window. To serving (the new one died:
	// rollback), draining (the window passed, or a stop), exited.
	stateStandby
	// stateDraining: sent SIGTERM; SIGKILL after Drain. To exited.
	stateDraining
	// stateExited: reaped. Final.
	stateExited
)

var stateNames = [...]string{"starting", "serving", "standby", "draining", "exited"}

// String is the state's name in `baton status`.
func (st childState) String() string { return stateNames[st] }

// transitions lists, for every state, the states it may change to.
var transitions = [...][]childState{
	stateStarting: {stateServing, stateDraining, stateExited},
	stateServing:  {stateStandby, stateDraining, stateExited},
	stateStandby:  {stateServing, stateDraining, stateExited},
	stateDraining: {stateExited},
	stateExited:   nil,
}

// errTransition is a state change the table does not allow.
var errTransition = errors.New("state change not allowed")

// to moves c to next, or returns an error wrapping errTransition (and
// leaves c alone) when the table does not allow it: a CMD that has exited
// is never sent to draining, a draining one never serves again. With a
// front, entering serving routes requests to c, leaving it stops them,
// and exiting releases c's private sockets.
// Supervisor.mu is held.
func (c *child) to(next childState) error {
	if !slices.Contains(transitions[c.state], next) {
		return fmt.Errorf("pid %d: %s to %s: %w", c.pid, c.state, next, errTransition)
	}
	prev := c.state
	c.state = next
	if c.front != nil {
		// The front routes requests to the serving CMDs only.
		switch {
		case next == stateServing:
			c.front.Route(c.n)
		case prev == stateServing:
			c.front.Unroute(c.n)
		}
		if next == stateExited {
			c.front.Release(c.n)
		}
	}
	return nil
}
