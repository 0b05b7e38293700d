package notify

import (
	"fmt"
	"os"
	"runtime"
)

// FDStoreOptions describes one FDStoreWith call. The zero value stores
// unnamed fds that the manager watches.
type FDStoreOptions struct {
	// Name is sent as FDNAME= and becomes the fds' LISTEN_FDNAMES entry on
	// the next start. Empty omits FDNAME (the manager then says "stored").
	// Checked by CheckFDName before anything is sent.
	Name string

	// NoPoll sends FDPOLL=0: the manager does not watch the fds and so does
	// not drop them from the store when they report POLLHUP or POLLERR (a
	// connected socket whose peer went away, a pipe whose writer exited).
	NoPoll bool
}

// FDStore sends FDSTORE=1 with FDNAME=name and the files attached as
// SCM_RIGHTS: the manager keeps copies across restarts of the service and
// passes them back through LISTEN_FDS. It is FDStoreWith with only a name.
func (c *Client) FDStore(name string, files ...*os.File) error {
	return c.FDStoreWith(FDStoreOptions{Name: name}, files...)
}

// FDStoreWith sends files to the manager's fd store. More than
// MaxFDsPerMessage files go in several datagrams, each carrying the same
// FDSTORE=1, FDNAME= and FDPOLL= lines. The name and the files are checked
// before the first datagram is sent; if a later datagram fails, the error
// says how many fds were stored before it.
//
// The manager ignores FDSTORE unless the unit sets FileDescriptorStoreMax=
// above zero, and keeps at most that many fds. The files stay open in the
// caller; they must not be closed during the call.
func (c *Client) FDStoreWith(opts FDStoreOptions, files ...*os.File) error {
	if err := CheckFDName(opts.Name); err != nil {
		return err
	}
	if len(files) == 0 {
		return invalidf("FDSTORE without files")
	}
	msg := "FDSTORE=1"
	if opts.Name != "" {
		msg += "\nFDNAME=" + opts.Name
	}
	if opts.NoPoll {
		msg += "\nFDPOLL=0"
	}
	fds, err := fileFDs(files)
	if err != nil {
		return err
	}
	defer runtime.KeepAlive(files)
	if !c.Enabled() {
		return nil
	}
	for start := 0; start < len(fds); start += MaxFDsPerMessage {
		end := min(start+MaxFDsPerMessage, len(fds))
		if err := c.sendmsg(msg, fds[start:end]); err != nil {
			return fmt.Errorf("notify: fd store %q: %d of %d fds stored: %w", opts.Name, start, len(fds), err)
		}
	}
	return nil
}

// fileFDs returns the descriptors of files without changing their mode
// (File.Fd would make them blocking). They stay valid while files are
// reachable and not closed.
func fileFDs(files []*os.File) ([]int, error) {
	fds := make([]int, 0, len(files))
	for i, f := range files {
		if f == nil {
			return nil, invalidf("file %d is nil", i)
		}
		rc, err := f.SyscallConn()
		if err != nil {
			return nil, fmt.Errorf("notify: file %d (%s): %w", i, f.Name(), err)
		}
		fd := -1
		if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
			return nil, fmt.Errorf("notify: file %d (%s): %w", i, f.Name(), err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}
