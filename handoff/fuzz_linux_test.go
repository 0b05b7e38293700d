package handoff

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// FuzzHandOverChannel: whatever a successor writes on the hand-over
// channel is classified without panicking; only "READY" is ready, and a
// version is only ever a decimal number.
func FuzzHandOverChannel(f *testing.F) {
	for _, s := range []string{"READY", "READY ", "VERSION 2", "VERSION", "VERSION -1", "VERSION 2x", "MAIN", "ABORT timeout", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, arg := successorMessage(b)
		switch kind {
		case msgReady:
			if string(b) != msgReady {
				t.Errorf("%q taken for READY", b)
			}
		case msgVersion:
			if _, err := strconv.Atoi(arg); err != nil || msgVersion+" "+arg != string(b) {
				t.Errorf("%q: version %q", b, arg)
			}
		case "":
		default:
			t.Errorf("%q: kind %q", b, kind)
		}
	})
}

// FuzzHandOverEnv: the variables a predecessor passes (positions of bound
// fds, the draining generations) are parsed strictly, never panic, and
// what parses formats back to the same value.
func FuzzHandOverEnv(f *testing.F) {
	for _, s := range []string{"", "0", "0,2", "2,0", "1,,2", "-1", "01", "3:100:5,4:200:6", "1:1:1", "4:0200:1", "4:200:01", "VERSION 02"} {
		f.Add(s, 5, 99)
	}
	f.Fuzz(func(t *testing.T, v string, gen, parent int) {
		if ps, err := parseBound(v); err == nil {
			var out []string
			for _, p := range ps {
				out = append(out, strconv.Itoa(p))
			}
			if strings.Join(out, ",") != v || !slices.IsSorted(ps) {
				t.Errorf("parseBound(%q) = %v", v, ps)
			}
		}
		if list, err := parseDraining(v, gen, parent); err == nil && formatDraining(list) != v {
			t.Errorf("parseDraining(%q) = %v, formats as %q", v, list, formatDraining(list))
		}
	})
}
