package testproc

import (
	"bytes"
	"sync"
)

// Buffer collects a process's output while the test reads it: os/exec
// copies into a Cmd's Stderr from its own goroutine until the process
// exits, so a bytes.Buffer read in a failure message races with it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what has been written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
