package handoff

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseDraining(t *testing.T) {
	self := os.Getpid()
	ok := []struct {
		v    string
		want []procRef
	}{
		{"4:100:7", []procRef{{4, 100, 7}}},
		{"1:10:5,3:30:6,4:100:7", []procRef{{1, 10, 5}, {3, 30, 6}, {4, 100, 7}}},
	}
	for _, tt := range ok {
		got, err := parseDraining(tt.v, 5, 100)
		if err != nil {
			t.Errorf("parseDraining(%q): %v", tt.v, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(procRef{})); diff != "" {
			t.Errorf("parseDraining(%q) (-want +got):\n%s", tt.v, diff)
		}
		if back := formatDraining(got); back != tt.v {
			t.Errorf("formatDraining(parseDraining(%q)) = %q", tt.v, back)
		}
	}
	bad := []string{
		"",                                  // the predecessor is always listed
		"4:100",                             // two fields
		"4:100:7:1",                         // four
		"4:100:7,",                          // empty entry
		"+4:100:7",                          // sign
		"4:-100:7",                          // negative pid
		"4:100:0x7",                         // not decimal
		"4: 100:7",                          // space
		"4:100:0",                           // no start time
		"0:1:1,4:100:7",                     // generation 0
		"3:1:1,3:2:2,4:100:7",               // not increasing
		"5:1:1,4:100:7",                     // not increasing
		"4:101:7",                           // the last is not the predecessor's pid
		"3:100:7",                           // nor its generation
		"1:100:7,6:100:7",                   // newer than this generation
		fmt.Sprintf("1:%d:1,4:100:7", self), // this process
		"4:100:18446744073709551616",        // start time out of range
	}
	for _, v := range bad {
		if got, err := parseDraining(v, 5, 100); err == nil || !errors.Is(err, errDrainingList) {
			t.Errorf("parseDraining(%q) = %v, %v; want an error", v, got, err)
		}
	}
}

func TestProcStart(t *testing.T) {
	start, running := procStart(os.Getpid())
	if start == 0 || !running {
		t.Fatalf("procStart(self) = %d, %v", start, running)
	}
	if !(procRef{pid: os.Getpid(), start: start}).running() {
		t.Error("this process does not match its own start time")
	}
	if (procRef{pid: os.Getpid(), start: start + 1}).running() {
		t.Error("this process matches another start time")
	}
	if _, running := procStart(1 << 30); running {
		t.Error("pid 2^30 runs")
	}
}
