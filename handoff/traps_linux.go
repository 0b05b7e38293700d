package handoff

import "golang.org/x/sys/unix"

// foreground reports whether this process's group is the foreground group
// of the terminal on its stdin: started from an interactive shell.
func foreground() bool {
	pgrp, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}
