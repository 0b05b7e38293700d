//go:build !linux

package pidfs

// Self reports false: only Linux has pidfds.
func Self() (uint64, bool) { return 0, false }

// ID reports false: only Linux has pidfds.
func ID(int) (uint64, bool) { return 0, false }
