package notify

import (
	"errors"
	"strings"
	"testing"
)

// FuzzNotifySocketAddr: parseSocket never panics, accepts only what a
// sockaddr_un can carry, and returns accepted values unchanged.
func FuzzNotifySocketAddr(f *testing.F) {
	for _, s := range []string{
		"", "/run/systemd/notify", "@abstract", "@", "relative", "./x",
		"vsock:2:1234", "/" + strings.Repeat("a", 106), "/" + strings.Repeat("a", 107),
		"/with\x00nul", "@\x00", "//double", "/run/../etc",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, err := parseSocket(s)
		if err != nil {
			if !errors.Is(err, ErrBadSocket) {
				t.Fatalf("%q: error %v is not ErrBadSocket", s, err)
			}
			if name != "" {
				t.Fatalf("%q: name %q with an error", s, name)
			}
			return
		}
		if name != s {
			t.Fatalf("%q became %q", s, name)
		}
		if len(s) > maxSocketLen || len(s) < 2 && s != "/" || strings.IndexByte(s, 0) >= 0 {
			t.Fatalf("%q accepted", s)
		}
		if s[0] != '/' && s[0] != '@' {
			t.Fatalf("%q accepted: neither a path nor abstract", s)
		}
	})
}

// FuzzMessage: Send's checks and CheckFDName agree with the protocol's
// rules on every input, and never panic.
func FuzzMessage(f *testing.F) {
	for _, s := range []string{"READY=1", "", "a:b", "x\x00", strings.Repeat("x", 256), "STATUS=\n", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := checkMessage(s)
		bad := s == "" || strings.IndexByte(s, 0) >= 0 || len(s) > MaxMessageSize
		if (err != nil) != bad {
			t.Fatalf("checkMessage(%q) = %v", s, err)
		}
		err = CheckFDName(s)
		bad = len(s) > MaxFDNameLen || strings.ContainsFunc(s, func(r rune) bool {
			return r == ':' || r < ' ' || r >= 0x7f
		})
		if (err != nil) != bad {
			t.Fatalf("CheckFDName(%q) = %v", s, err)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("CheckFDName(%q): %v is not ErrInvalid", s, err)
		}
	})
}
