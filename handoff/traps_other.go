//go:build !linux

package handoff

// foreground: the warning is about upgrades, which are Linux only.
func foreground() bool { return false }
