//go:build !linux

package spawn

import "os"

// Start returns ErrUnsupported on systems other than Linux.
func Start(*Config) (*os.Process, error) { return nil, ErrUnsupported }
