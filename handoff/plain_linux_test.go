package handoff

// newPlainForTest is the Upgrader New returns off Linux (upgrader_other.go),
// made here on Linux: the plain tests run on every system.
func newPlainForTest(cfg Config) (*Upgrader, error) { return newPlain(cfg, &fdSet{}) }

// plainReady is Ready off Linux (on Linux Ready talks to a manager and a
// predecessor, and opens the control socket).
func plainReady(u *Upgrader) error { return u.readyPlain() }

// plainUpgrade is what Upgrade returns off Linux; on Linux Upgrade
// upgrades for real, so the tests here see the error itself.
func plainUpgrade(*Upgrader) error { return errNoUpgrade }
