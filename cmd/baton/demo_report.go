package main

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// demoResult is what a demo measured, and the output of --json.
type demoResult struct {
	Mode           string    `json:"mode"`
	Addr           string    `json:"addr"`
	Clients        int       `json:"clients"`
	Requests       int64     `json:"requests"`
	Failed         int64     `json:"failed"`
	Errors         []string  `json:"errors,omitempty"` // the first few
	Upgrades       int       `json:"upgrades"`
	UpgradesFailed int       `json:"upgrades_failed"` // good versions that did not take over
	PIDs           []int     `json:"pids"`            // serving pids, first to last
	BrokenRolled   bool      `json:"broken_rolled_back"`
	BrokenError    string    `json:"broken_error"`
	HandoffMS      summaryMS `json:"handoff_ms"`
	OldExitMS      summaryMS `json:"old_exit_ms"`
	Seconds        float64   `json:"seconds"`
	OK             bool      `json:"ok"`
	// Naive is the same load against the same server stopped and started
	// again as many times, the way a plain restart does it.
	Naive demoNaive `json:"naive"`
	// Timelines are the naive restarts' and then the upgrades'.
	Timelines []demoTimeline `json:"timelines"`
}

// demoNaive is what the naive restarts cost.
type demoNaive struct {
	Restarts int      `json:"restarts"`
	Requests int64    `json:"requests"`
	Failed   int64    `json:"failed"`
	Errors   []string `json:"errors,omitempty"` // the first few
}

// demoTimeline is the answers around one upgrade or restart, per
// process, in steps of StepMS from StartMS after the request.
type demoTimeline struct {
	What    string    `json:"what"`
	StartMS int       `json:"start_ms"`
	StepMS  int       `json:"step_ms"`
	Rows    []demoRow `json:"rows"`
}

type demoRow struct {
	Label  string `json:"label"`
	Counts []int  `json:"counts"`
}

// demoErrors is how many failed requests' texts a demoResult lists.
const demoErrors = 5

type summaryMS struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

func summarize(ds []time.Duration) summaryMS {
	if len(ds) == 0 {
		return summaryMS{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return summaryMS{Min: msOf(s[0]), Median: msOf(med), Max: msOf(s[len(s)-1]), N: len(s)}
}

func printDemo(w io.Writer, r *demoResult) {
	fmt.Fprintf(w, "\nresponses per 10 ms around each restart and upgrade (0 ms: the SIGTERM or the reload request)\n")
	for _, tl := range r.Timelines {
		printTimeline(w, tl)
	}
	fmt.Fprintf(w, "\nnaive restart: %d refused or failed; baton: %d\n(%d requests over %d stop-and-starts, then %d over %d upgrades, the same clients)\n",
		r.Naive.Failed, r.Failed, r.Naive.Requests, r.Naive.Restarts, r.Requests, r.Upgrades)
	for _, e := range r.Naive.Errors {
		fmt.Fprintf(w, "    naive: %s\n", e)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "requests\t%d (%d clients)\n", r.Requests, r.Clients)
	fmt.Fprintf(tw, "failed requests\t%d\n", r.Failed)
	for _, e := range r.Errors {
		fmt.Fprintf(tw, "\t%s\n", e)
	}
	fmt.Fprintf(tw, "upgrades done\t%d of %d\n", r.Upgrades, r.Upgrades+r.UpgradesFailed)
	rolled := "NOT rolled back: " + r.BrokenError
	if r.BrokenRolled {
		rolled = "rolled back, the old process kept serving"
	}
	fmt.Fprintf(tw, "broken upgrade\t%s\n", rolled)
	fmt.Fprintf(tw, "handoff latency\tmin %.1f ms, median %.1f ms, max %.1f ms\n", r.HandoffMS.Min, r.HandoffMS.Median, r.HandoffMS.Max)
	fmt.Fprintf(tw, "old process exit\tmin %.1f ms, median %.1f ms, max %.1f ms (after the new one was ready)\n", r.OldExitMS.Min, r.OldExitMS.Median, r.OldExitMS.Max)
	fmt.Fprintf(tw, "took\t%.1f s\n", r.Seconds)
	_ = tw.Flush()
}

// msOf is d in milliseconds, to the microsecond.
func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", msOf(d)) }

// printTimeline draws tl as a table: a column per step, a row per process.
func printTimeline(w io.Writer, tl demoTimeline) {
	fmt.Fprintf(w, "\n%s\n", tl.What)
	width := 0
	for _, r := range tl.Rows {
		width = max(width, len(r.Label))
	}
	fmt.Fprintf(w, "  %*s", width, "ms")
	if len(tl.Rows) > 0 {
		for i := range tl.Rows[0].Counts {
			fmt.Fprintf(w, "%5d", tl.StartMS+i*tl.StepMS)
		}
	}
	fmt.Fprintln(w)
	for _, r := range tl.Rows {
		fmt.Fprintf(w, "  %*s", width, r.Label)
		for _, n := range r.Counts {
			if n == 0 {
				fmt.Fprintf(w, "%5s", ".")
				continue
			}
			fmt.Fprintf(w, "%5d", n)
		}
		fmt.Fprintln(w)
	}
}
