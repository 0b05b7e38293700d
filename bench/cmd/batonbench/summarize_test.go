//go:build linux

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/bench/control"
	"github.com/batonhq/baton/bench/load"
)

func TestSummarize(t *testing.T) {
	t0 := time.Now()
	msd := func(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }
	res := &load.Result{
		Start:   t0,
		Elapsed: time.Second,
		Records: []load.Record{
			{Start: msd(0), End: msd(1), Pid: 10},                       // before the upgrade
			{Start: msd(99), End: msd(101), Pid: 10},                    // overlaps: ends after the trigger
			{Start: msd(104), End: msd(106), Pid: 11},                   // overlaps: starts before the handover
			{Start: msd(100), End: msd(150), Pid: 10, Slow: true},       // overlaps, slow; old's last answer
			{Start: msd(200), End: msd(201), Pid: 11},                   // after
			{Start: msd(300), End: msd(300), Class: load.Refused},       // a failure
			{Start: msd(301), End: msd(302), Class: load.EOFReused},     // another
			{Start: msd(400), End: msd(401), Pid: 11, Reused: true},     // after
			{Start: msd(500), End: msd(501), Pid: 0, Class: load.Other}, // and one more
		},
	}
	ups := []control.Upgrade{
		{At: t0.Add(msd(100)), Old: 10, New: 11, Handoff: msd(5)},
		{At: t0.Add(msd(600)), Old: 11, Err: control.ErrNoHandoff},
	}
	r := &row{}
	summarize(r, res, ups, nil, msd(4))
	if r.Requests != 9 || r.OK != 6 || r.Failed != 3 {
		t.Errorf("requests %d ok %d failed %d, want 9 6 3", r.Requests, r.OK, r.Failed)
	}
	if r.Failures["refused"] != 1 || r.Failures["eof-reused"] != 1 || r.Failures["other"] != 1 {
		t.Errorf("failures %v", r.Failures)
	}
	if r.OverlapN != 3 {
		t.Errorf("overlapping requests %d, want 3", r.OverlapN)
	}
	if r.Upgrades != 2 || r.UpgradesOK != 1 || len(r.UpgradeErrors) != 1 {
		t.Errorf("upgrades %d ok %d errors %v", r.Upgrades, r.UpgradesOK, r.UpgradeErrors)
	}
	if r.Handoff["p50"] != 5 || r.FloorRatio != 1.25 {
		t.Errorf("handoff %v ratio %v", r.Handoff, r.FloorRatio)
	}
	if r.FastOverlapLatency["max"] != 2 || r.OverlapLatency["max"] != 50 {
		t.Errorf("overlap latency fast %v all %v", r.FastOverlapLatency, r.OverlapLatency)
	}

	var table strings.Builder
	writeTable(&table, []*row{r, {Peer: "x", Scenario: "all", Skipped: "binary missing"}})
	for _, want := range []string{"**3** (refused 1, eof-reused 1, other 1)", "1/2", "5.0 / 5.0 / 5.0", "1.25×", "skipped: binary missing"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

func TestParseNsOp(t *testing.T) {
	out := `goos: linux
BenchmarkReceive/one-2         	  100000	      1234 ns/op
BenchmarkReceive-2             	   50000	     20040.5 ns/op	     512 B/op
BenchmarkHTTPServe/handoff-2   	   10000	     11500 ns/op	    1234 B/op	      12 allocs/op
PASS`
	if v, a, ok := parseNsOp(out, "BenchmarkReceive"); !ok || v != 20040.5 || a != -1 {
		t.Errorf("parseNsOp = %v, %v, %v", v, a, ok)
	}
	if v, a, ok := parseNsOp(out, "BenchmarkHTTPServe/handoff"); !ok || v != 11500 || a != 12 {
		t.Errorf("parseNsOp of a sub-benchmark = %v, %v, %v", v, a, ok)
	}
	if _, _, ok := parseNsOp(out, "BenchmarkReady"); ok {
		t.Error("found a benchmark that is not there")
	}
}

func TestSplit(t *testing.T) {
	if got := split(" a, ,b,"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("split = %q", got)
	}
}

func TestProtocolTable(t *testing.T) {
	res := &load.Result{
		Records: []load.Record{
			{Class: load.OK, Events: 4},
			{Class: load.AbruptEnd, Events: 2},
			{Class: load.Refused},
		},
		Replaced: 3,
		Unsent:   1,
	}
	probe := &load.Result{Records: []load.Record{{Class: load.OK}, {Class: load.EOFNew}}}
	r := &row{Peer: "p", Scenario: "sse", Proto: load.Events.String(), Protocols: true}
	summarize(r, res, nil, nil, 0)
	summarizeProtocols(r, res, probe)
	if r.Events != 6 || r.AbruptEnds != 1 || r.Replaced != 3 || r.Unsent != 1 || r.ProbeRequests != 2 || r.ProbeFailed != 1 {
		t.Fatalf("row %+v", r)
	}
	var b strings.Builder
	writeTable(&b, []*row{r})
	if strings.Contains(b.String(), "| sse |") {
		t.Errorf("a protocol row in the main table:\n%s", b.String())
	}
	b.Reset()
	if !writeProtocolTable(&b, []*row{r, {Peer: "q", Scenario: "h2", Skipped: "binary missing", Protocols: true}}) {
		t.Fatal("no protocol table")
	}
	for _, want := range []string{"| 3 / 6 |", "**2** (refused 1, abrupt-end 1)", "2 / **1** (eof-new 1)", "skipped: binary missing"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("protocol table lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if writeProtocolTable(&b, []*row{{Peer: "x"}}) || b.Len() != 0 {
		t.Errorf("protocol table without protocol rows: %q", b.String())
	}
}
