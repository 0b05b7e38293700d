//go:build !linux

package handoff

import "os"

// Status returns what this generation knows of itself; off Linux there are
// no upgrades, so no history and no draining generations.
func (u *Upgrader) Status() Status {
	u.mu.Lock()
	defer u.mu.Unlock()
	return Status{
		PID: os.Getpid(), Generation: u.gen, State: u.stateLocked(), Started: u.startedAt, Exe: u.exe,
		Connections: u.connectionsLocked(), Sockets: []SocketStatus{}, Draining: []DrainStatus{},
		Upgrades: []UpgradeRecord{}, Counters: Counters{HandoffSeconds: []float64{}, DrainSeconds: []float64{}},
	}
}
