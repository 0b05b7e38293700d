//go:build !linux

package activation

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

type sys struct {
	getenv   func(string) (string, bool)
	unsetenv func(string) error
	getpid   func() int
}

var osSys = sys{getenv: os.LookupEnv, unsetenv: os.Unsetenv, getpid: os.Getpid}

// receive reads and unsets the variables like on Linux, so that a program
// that falls back to opening its own sockets works everywhere; it cannot
// take over inherited fds.
func receive(sys *sys) (*Set, error) {
	env, err := readEnv(sys.getenv, sys.unsetenv)
	if err != nil {
		return nil, err
	}
	// Without pidfds, LISTEN_PIDFDID is parsed but not compared.
	noID := func() (uint64, bool) { return 0, false }
	if _, _, err := parse(env, sys.getpid(), noID); errors.Is(err, ErrNotActivated) {
		return nil, err
	}
	return nil, fmt.Errorf("activation: receiving sockets on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
