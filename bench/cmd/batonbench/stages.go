//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/batonhq/baton/bench/control"
)

// The stages of an upgrade as handoff logs them at debug level ("upgrade
// stages", CLOCK_MONOTONIC ns; examples/http -log-level debug), in their
// order, then the driver's own end: the first answer from the new pid.
var stageCols = []struct{ key, title string }{
	{"signal", "SIGHUP received"},
	{"upgrade", "upgrade begun"},
	{"started", "successor exec'd (fork+exec returned)"},
	{"init", "successor's handoff init (before main)"},
	{"ready_sent", "READY sent"},
	{"ready", "READY received"},
	{"handed_over", "MAINPID (BARRIER) done"},
	{"main_sent", "main sent"},
	{"drain", "old gen's drain begun (listener closed)"},
	{"main", "successor main"},
	{"serving", "successor serving"},
	{"accept", "successor's first accept"},
	{"answer", "first answer (driver)"},
}

// monoRef ties time.Now to CLOCK_MONOTONIC, the clock of handoff's stage
// lines: mono(t) = monoRef.ns + t.Sub(monoRef.t).
var monoRef = newMonoRef()

type monoPair struct {
	t  time.Time
	ns int64
}

func newMonoRef() monoPair {
	var ts syscall.Timespec
	// clock_gettime(CLOCK_MONOTONIC, &ts)
	_, _, _ = syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(&ts)), 0)
	return monoPair{time.Now(), ts.Nano()}
}

func mono(t time.Time) int64 { return monoRef.ns + int64(t.Sub(monoRef.t)) }

// stageLine is one "upgrade stages" line: its role and the stage times.
type stageLine struct {
	role string
	pid  int
	t    map[string]int64
}

// readStages parses the "upgrade stages" lines of a peer's log, by pid:
// the predecessor's and the successor's lines of each process. A
// predecessor's lines are those of its last upgrade.
func readStages(path string) (pred, succ map[int]stageLine, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	pred, succ = map[int]stageLine{}, map[int]stageLine{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `msg="upgrade stages"`) {
			continue
		}
		l := stageLine{t: map[string]int64{}}
		for _, kv := range strings.Fields(line) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			switch k {
			case "role":
				l.role = v
			case "pid":
				l.pid, _ = strconv.Atoi(v)
			default:
				if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
					l.t[k] = n
				}
			}
		}
		m := map[string]map[int]stageLine{"predecessor": pred, "successor": succ}[l.role]
		if m == nil {
			continue
		}
		if old, ok := m[l.pid]; ok {
			// A process's lines of the same role add up (the drain's
			// start comes in a line of its own).
			for k, v := range l.t {
				old.t[k] = v
			}
			continue
		}
		m[l.pid] = l
	}
	return pred, succ, sc.Err()
}

// stageBreakdown is, per stage, the median time from the driver's trigger
// (ms), over the upgrades handed over whose both lines were found.
func stageBreakdown(logPath string, ups []control.Upgrade) (map[string]float64, int) {
	pred, succ, err := readStages(logPath)
	if err != nil || len(pred) == 0 {
		return nil, 0
	}
	per := map[string][]time.Duration{}
	n := 0
	for _, u := range ups {
		if u.Err != nil || u.New == 0 {
			continue
		}
		p, ok1 := pred[u.Old]
		s, ok2 := succ[u.New]
		if !ok1 || !ok2 {
			continue
		}
		n++
		at := mono(u.At)
		for _, c := range stageCols {
			if c.key == "answer" {
				per[c.key] = append(per[c.key], u.Handoff)
				continue
			}
			t, ok := p.t[c.key]
			if !ok {
				t, ok = s.t[c.key]
			}
			if ok && t >= at { // a signal before the trigger is an older one's
				per[c.key] = append(per[c.key], time.Duration(t-at))
			}
		}
	}
	if n == 0 {
		return nil, 0
	}
	out := map[string]float64{}
	for k, ds := range per {
		slices.Sort(ds)
		out[k] = float64(ds[len(ds)/2]) / float64(time.Millisecond)
	}
	return out, n
}

// writeStages prints the breakdown table: one row per peer × scenario
// with stage times, each the median time from the trigger (ms).
func writeStages(w io.Writer, rows []*row) bool {
	if !slices.ContainsFunc(rows, func(r *row) bool { return r.Stages != nil }) {
		return false
	}
	head := []string{"peer", "scenario", "upgrades"}
	for _, c := range stageCols {
		head = append(head, c.title)
	}
	fmt.Fprintln(w, "| "+strings.Join(head, " | ")+" |")
	fmt.Fprintln(w, "|---|---|"+strings.Repeat("--:|", len(head)-2))
	for _, r := range rows {
		if r.Stages == nil {
			continue
		}
		cells := []string{r.Peer, r.Scenario, strconv.Itoa(r.StagesN)}
		for _, c := range stageCols {
			v, ok := r.Stages[c.key]
			cells = append(cells, dash(ok, fmt.Sprintf("%.2f", v)))
		}
		fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
	}
	return true
}
