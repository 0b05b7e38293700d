package notify

import (
	"errors"
	"os"
	"strings"
)

// envVars are the variables the manager sets for the notify protocol.
var envVars = []string{EnvSocket, EnvWatchdogUsec, EnvWatchdogPID}

// UnsetEnv removes NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the
// process environment, so that children started later do not inherit them.
// Nothing calls it implicitly: a Client already made keeps working, but
// FromEnv and RunWatchdog called afterwards see no socket and no watchdog.
func UnsetEnv() error {
	var errs []error
	for _, k := range envVars {
		errs = append(errs, os.Unsetenv(k))
	}
	return errors.Join(errs...)
}

// WithoutEnv returns env (in os.Environ form) without NOTIFY_SOCKET,
// WATCHDOG_USEC and WATCHDOG_PID: the environment for a child that must not
// talk to this service's manager, for exec.Cmd.Env. env is not modified.
func WithoutEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if k == EnvSocket || k == EnvWatchdogUsec || k == EnvWatchdogPID {
			continue
		}
		out = append(out, kv)
	}
	return out
}
