package handoff

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// writePIDFile replaces Config.PIDFile with this process's pid atomically
// (a temporary file in the same directory, then rename). Called with u.mu.
func (u *Upgrader) writePIDFile() {
	if u.cfg.PIDFile == "" {
		return
	}
	if err := writeFileAtomic(u.cfg.PIDFile, []byte(strconv.Itoa(os.Getpid())+"\n")); err != nil {
		u.log.Warn("pid file", "err", err)
	}
}

// removePIDFile removes the PID file when it still names this process.
func (u *Upgrader) removePIDFile() {
	if u.cfg.PIDFile == "" {
		return
	}
	b, err := os.ReadFile(u.cfg.PIDFile)
	if err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		_ = os.Remove(u.cfg.PIDFile)
	}
}

func writeFileAtomic(name string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}
