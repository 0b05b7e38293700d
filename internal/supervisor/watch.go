package supervisor

import (
	"os"
	"time"
)

// watcher polls a file for a change of identity, size or mtime, and reports
// it once the new state has been seen unchanged on two polls in a row, so a
// file still being written (a linker writing in place) is not acted on.
type watcher struct {
	path string
	last fileState // the state acted on
	seen fileState // the state seen at the previous poll
}

type fileState struct {
	ok    bool
	ino   uint64
	dev   uint64
	size  int64
	mtime time.Time
}

func newWatcher(path string) *watcher {
	st := stat(path)
	return &watcher{path: path, last: st, seen: st}
}

// changed polls once.
func (w *watcher) changed() bool {
	st := stat(w.path)
	stable := st == w.seen
	w.seen = st
	if !st.ok || st == w.last {
		return false
	}
	if !stable {
		return false // wait one more poll
	}
	w.last = st
	return true
}

func stat(path string) fileState {
	fi, err := os.Stat(path)
	if err != nil {
		return fileState{}
	}
	ino, dev := fileID(fi)
	return fileState{ok: true, ino: ino, dev: dev, size: fi.Size(), mtime: fi.ModTime()}
}
