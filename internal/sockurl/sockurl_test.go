package sockurl

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Addr
	}{
		{in: "tcp://127.0.0.1:8080", want: Addr{"tcp", "127.0.0.1:8080"}},
		{in: "tcp://:8080", want: Addr{"tcp", ":8080"}},
		{in: "tcp6://[::1]:80", want: Addr{"tcp6", "[::1]:80"}},
		{in: "udp://0.0.0.0:53", want: Addr{"udp", "0.0.0.0:53"}},
		{in: "unix:/run/app.sock", want: Addr{"unix", "/run/app.sock"}},
		{in: "unix:@app", want: Addr{"unix", "@app"}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if back, err := Parse(got.String()); err != nil || back != got {
			t.Errorf("round trip of %q: %+v, %v", tt.in, back, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, reason string }{
		{"", "want tcp://"},
		{"http://x:1", "unknown scheme"},
		{"tcp:127.0.0.1:80", "want tcp://HOST:PORT"},
		{"tcp://127.0.0.1", "want HOST:PORT"},
		{"tcp://127.0.0.1:0", "out of range"},
		{"tcp://127.0.0.1:65536", "out of range"},
		{"udp://127.0.0.1:-1", "out of range"},
		{"tcp://localhost:80", "not an IP address"},
		{"unix:run/app.sock", "not absolute"},
		{"unix:", "empty"},
		{"unix:/" + strings.Repeat("x", MaxUnixPath), "longer than"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		if err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tt.reason) || !strings.Contains(err.Error(), tt.in) {
			t.Errorf("Parse(%q) error = %v, want one naming the value with %q", tt.in, err, tt.reason)
		}
	}
}
