package notify

import (
	"fmt"
	"strings"
)

// maxSocketLen is the longest NOTIFY_SOCKET accepted: sockaddr_un has 108
// bytes of sun_path and libsystemd keeps one for the terminating NUL, for
// paths and @abstract names alike.
const maxSocketLen = 107

// parseSocket checks a NOTIFY_SOCKET value and returns the name for a
// sockaddr_un: the path itself, or "@name" for an abstract socket (the
// leading '@' stands for the NUL byte on the wire).
func parseSocket(s string) (string, error) {
	var reason string
	switch {
	case s == "":
		reason = "empty"
	case strings.HasPrefix(s, "vsock:"):
		reason = "AF_VSOCK addresses are not supported"
	case strings.IndexByte(s, 0) >= 0:
		reason = "contains a NUL byte"
	case s == "@":
		reason = "abstract name is empty"
	case s[0] != '/' && s[0] != '@':
		reason = "neither an absolute path nor an @abstract name"
	case len(s) > maxSocketLen:
		reason = "longer than the 107 bytes sockaddr_un can hold"
	default:
		return s, nil
	}
	return "", fmt.Errorf("%w: %s", ErrBadSocket, reason)
}
