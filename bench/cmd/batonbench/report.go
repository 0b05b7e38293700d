//go:build linux

package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/batonhq/baton/bench/load"
)

// writeTable prints the side-by-side markdown table of every row but the
// protocol scenarios'; nothing when there are none.
func writeTable(w io.Writer, rows []*row) bool {
	if !slices.ContainsFunc(rows, func(r *row) bool { return !r.Protocols && !r.Wave }) {
		return false
	}
	fmt.Fprintln(w, "| peer | scenario | requests | failed | upgrades ok | handoff p50 / p90 / max (ms) | p50 ÷ floor | old gen exits after handover p50 / max (ms) | … after its last answer p50 / max (ms) | fast-request latency p99 all / overlapping an upgrade (ms) | overlapping ÷ steady p99 | throughput ÷ plain (CPU per request ÷ plain) | fd start→end | RSS MiB start→end |")
	fmt.Fprintln(w, "|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range rows {
		if r.Protocols || r.Wave {
			continue
		}
		if r.Skipped != "" {
			fmt.Fprintf(w, "| %s | %s | skipped: %s ||||||||||||\n", r.Peer, r.Scenario, r.Skipped)
			continue
		}
		cells := []string{
			r.Peer,
			r.Scenario,
			fmt.Sprint(r.Requests),
			failedCell(r),
			dash(r.Upgrades > 0, fmt.Sprintf("%d/%d", r.UpgradesOK, r.Upgrades)),
			dash(r.Handoff != nil, fmt.Sprintf("%.1f / %.1f / %.1f", r.Handoff["p50"], r.Handoff["p90"], r.Handoff["max"])),
			dash(r.FloorRatio > 0, fmt.Sprintf("%.2f× (floor %.1f)", r.FloorRatio, r.FloorMS)),
			dash(r.OldLife != nil, fmt.Sprintf("%.0f / %.0f", r.OldLife["p50"], r.OldLife["max"])+aliveNote(r)),
			dash(r.OldLinger != nil, fmt.Sprintf("%.1f / %.1f", r.OldLinger["p50"], r.OldLinger["max"])),
			fmt.Sprintf("%.1f / %s", r.FastLatency["p99"], dash(r.FastOverlapLatency != nil, fmt.Sprintf("%.1f", r.FastOverlapLatency["p99"]))),
			dash(r.FastOverlapLatency != nil && r.FastSteadyLatency["p99"] > 0, fmt.Sprintf("%.2f", r.FastOverlapLatency["p99"]/r.FastSteadyLatency["p99"])),
			dash(r.ThroughputRatio > 0, fmt.Sprintf("%.3f (%.3f)", r.ThroughputRatio, r.CPURatio)),
			fdCell(r),
			rssCell(r),
		}
		fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
	}
	return true
}

func dash(ok bool, s string) string {
	if !ok {
		return "–"
	}
	return s
}

func aliveNote(r *row) string {
	if r.OldAlive == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d still alive)", r.OldAlive)
}

func failedCell(r *row) string {
	if r.Failed == 0 {
		return "0"
	}
	return fmt.Sprintf("**%d** (%s)", r.Failed, classList(r.Failures))
}

func fdCell(r *row) string {
	if r.FD == nil {
		return "–"
	}
	s := fmt.Sprintf("%d→%d", r.FD.Start, r.FD.End)
	if r.SupervisorFD != nil {
		s += fmt.Sprintf(" (run: %d→%d)", r.SupervisorFD.Start, r.SupervisorFD.End)
	}
	return s
}

func rssCell(r *row) string {
	if r.RSSKiB == nil {
		return "–"
	}
	s := fmt.Sprintf("%.1f→%.1f", float64(r.RSSKiB.Start)/1024, float64(r.RSSKiB.End)/1024)
	if r.SupervisorRSS != nil {
		s += fmt.Sprintf(" (run: %.1f→%.1f)", float64(r.SupervisorRSS.Start)/1024, float64(r.SupervisorRSS.End)/1024)
	}
	return s
}

// floorRow is the floor of one server binary.
type floorRow struct {
	Date   string             `json:"date"`
	Kind   string             `json:"kind"`
	Server string             `json:"server"`
	Peers  []string           `json:"peers"`
	N      int                `json:"n"`
	MS     map[string]float64 `json:"fork_exec_to_first_answer_ms"`
}

func writeFloors(w io.Writer, floors []*floorRow) {
	fmt.Fprintln(w, "| server binary | peers | fork-exec → first answer p50 / p90 / max (ms), no load |")
	fmt.Fprintln(w, "|---|---|--:|")
	sort.Slice(floors, func(i, j int) bool { return floors[i].Server < floors[j].Server })
	for _, f := range floors {
		fmt.Fprintf(w, "| %s | %s | %.2f / %.2f / %.2f (n=%d) |\n", f.Server, strings.Join(f.Peers, ", "), f.MS["p50"], f.MS["p90"], f.MS["max"], f.N)
	}
}

// benchRow is one Go benchmark.
type benchRow struct {
	Date     string  `json:"date"`
	Kind     string  `json:"kind"`
	Name     string  `json:"benchmark"`
	Package  string  `json:"package"`
	NsOp     float64 `json:"ns_op,omitempty"`
	AllocsOp float64 `json:"allocs_op"` // -1: not measured
	Missing  string  `json:"missing,omitempty"`
}

func writeBenches(w io.Writer, bs []*benchRow) {
	fmt.Fprintln(w, "| Go benchmark | package | ns/op | allocs/op |")
	fmt.Fprintln(w, "|---|---|--:|--:|")
	for _, b := range bs {
		v, a := fmt.Sprintf("%.0f", b.NsOp), dash(b.AllocsOp >= 0, fmt.Sprintf("%.0f", b.AllocsOp))
		if b.Missing != "" {
			v, a = "missing: "+b.Missing, "–"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", b.Name, b.Package, v, a)
	}
}

// writeProtocolTable prints the rows of the protocol scenarios, if any.
func writeProtocolTable(w io.Writer, rows []*row) bool {
	any := false
	for _, r := range rows {
		if !r.Protocols {
			continue
		}
		if !any {
			fmt.Fprintln(w, "| peer | scenario | requests (sse: streams / events) | failed | abrupt ends | upgrades ok | h2 conns replaced (requests unsent) | probe requests / failed | handoff p50 / p90 / max (ms) | old gen exits after handover p50 / max (ms) |")
			fmt.Fprintln(w, "|---|---|--:|---|--:|--:|--:|--:|--:|--:|")
			any = true
		}
		if r.Skipped != "" {
			fmt.Fprintf(w, "| %s | %s | skipped: %s ||||||||\n", r.Peer, r.Scenario, r.Skipped)
			continue
		}
		reqs := fmt.Sprint(r.Requests)
		if r.Proto == load.Events.String() {
			reqs = fmt.Sprintf("%d / %d", r.Requests, r.Events)
		}
		probe := fmt.Sprintf("%d / %d", r.ProbeRequests, r.ProbeFailed)
		if r.ProbeFailed > 0 {
			probe = fmt.Sprintf("%d / **%d** (%s)", r.ProbeRequests, r.ProbeFailed, classList(r.ProbeFailures))
		}
		cells := []string{
			r.Peer,
			r.Scenario,
			reqs,
			failedCell(r),
			fmt.Sprint(r.AbruptEnds),
			dash(r.Upgrades > 0, fmt.Sprintf("%d/%d", r.UpgradesOK, r.Upgrades)),
			dash(r.Proto == load.HTTP2.String(), fmt.Sprintf("%d (%d)", r.Replaced, r.Unsent)),
			probe,
			dash(r.Handoff != nil, fmt.Sprintf("%.1f / %.1f / %.1f", r.Handoff["p50"], r.Handoff["p90"], r.Handoff["max"])),
			dash(r.OldLife != nil, fmt.Sprintf("%.0f / %.0f", r.OldLife["p50"], r.OldLife["max"])+aliveNote(r)),
		}
		fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
	}
	return any
}

// classList is "class n, ..." in report order.
func classList(failures map[string]int) string {
	var parts []string
	for _, c := range load.Classes() {
		if n := failures[c.String()]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", c, n))
		}
	}
	return strings.Join(parts, ", ")
}
