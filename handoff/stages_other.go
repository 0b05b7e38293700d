//go:build !linux

package handoff

// monotonicNS: upgrades are Linux only, and so are their stages.
func monotonicNS() int64 { return 0 }
