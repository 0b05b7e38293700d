//go:build !linux

package supervisor

import (
	"errors"
	"fmt"
	"os"
)

var errUnsupported = fmt.Errorf("supervisor: %w on this platform", errors.ErrUnsupported)

func startProcess(string, []string, []string, *os.File, *os.File, *os.File, []Socket) (*os.Process, error) {
	return nil, errUnsupported
}

func setBlocking(*os.File) error           { return errUnsupported }
func killGroup(int) error                  { return errUnsupported }
func monotonicUsec() int64                 { return 0 }
func exitPending(int) bool                 { return false }
func fileID(os.FileInfo) (ino, dev uint64) { return 0, 0 }

type reaper struct{}

func (s *Supervisor) waitExit(*child)    {}
func (s *Supervisor) startReaper() error { return errUnsupported }
func (s *Supervisor) stopReaper()        {}
