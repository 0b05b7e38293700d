//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/batonhq/baton/bench/control"
	"github.com/batonhq/baton/bench/load"
	"github.com/batonhq/baton/bench/tlscert"
)

// driveResult is the one JSON line of `batonbench drive`.
type driveResult struct {
	Addr       string             `json:"addr"`
	Proto      string             `json:"proto"`
	Mode       string             `json:"mode,omitempty"`
	TLS        bool               `json:"tls"`
	Clients    int                `json:"clients"`
	DurationS  float64            `json:"duration_s"`
	Requests   int                `json:"requests"`
	OK         int                `json:"ok"`
	Failed     int                `json:"failed"`
	Failures   map[string]int     `json:"failures"`
	Statuses   map[string]int     `json:"statuses"` // every answer's status code, 200 included
	Non2xx     int                `json:"non_2xx"`
	Status5xx  int                `json:"status_5xx"`
	Upgrades   int                `json:"upgrades"`
	UpgradesOK int                `json:"upgrades_ok"`
	Handoff    map[string]float64 `json:"handoff_ms,omitempty"`
	Errors     map[string]string  `json:"example_errors,omitempty"`
}

// drive runs the non-retrying load against one address, which may be a
// third-party proxy in front of a peer, while SIGHUP upgrades the process
// in -pidfile every -every; the new process is known from the X-Pid of the
// answers. It prints a summary and one JSON line. bench/nginx-run and
// bench/h2load-run use it.
func drive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("batonbench drive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "`host:port` the load goes to")
	clients := fs.Int("clients", 8, "concurrent `n` clients")
	duration := fs.Duration("duration", 20*time.Second, "load `duration`")
	mode := fs.String("mode", "keep-alive", "HTTP/1.1 connection `mode`: keep-alive or new-conn")
	proto := fs.String("proto", "http/1.1", "`protocol`: http/1.1 or h2 (h2 needs -tls-cert)")
	think := fs.Duration("think", time.Millisecond, "pause of each client between two requests")
	slowShare := fs.Float64("slow-share", 0.02, "share of requests sent as /?ms=N")
	slowMS := fs.Int("slow-ms", 50, "N of the slow requests")
	certFile := fs.String("tls-cert", "", "speak TLS, trusting this PEM certificate `file`")
	pidfile := fs.String("pidfile", "", "SIGHUP the pid in this `file` every -every (no upgrades without it)")
	every := fs.Duration("every", 400*time.Millisecond, "period between upgrades")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" {
		return errors.New("drive: -addr is required")
	}
	cfg := load.Config{Addr: *addr, Clients: *clients, Duration: *duration, Think: *think, SlowShare: *slowShare, SlowMS: *slowMS}
	switch *mode {
	case "keep-alive":
	case "new-conn":
		cfg.Mode = load.NewConn
	default:
		return fmt.Errorf("drive: unknown -mode %q", *mode)
	}
	switch *proto {
	case "http/1.1":
	case "h2":
		cfg.Proto = load.HTTP2
	default:
		return fmt.Errorf("drive: unknown -proto %q", *proto)
	}
	if *certFile != "" {
		tc, err := tlscert.Client(*certFile)
		if err != nil {
			return err
		}
		tc.NextProtos = []string{"http/1.1"}
		cfg.TLS = tc
	}
	tr := control.NewTracker()
	cfg.Observe = tr.Observe
	var res *load.Result
	loadDone := make(chan error, 1)
	go func() {
		var err error
		res, err = load.Run(ctx, cfg)
		loadDone <- err
	}()
	var ups []control.Upgrade
	if *pidfile != "" {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, _, err := tr.WaitNew(wctx, 0, time.Time{})
		cancel()
		if err == nil {
			ups = control.Run(ctx, control.Config{
				Trigger: control.Signal{Sig: syscall.SIGHUP, PidFile: *pidfile},
				Tracker: tr,
				Every:   *every,
				Until:   *duration - 300*time.Millisecond,
				PidFile: *pidfile,
			})
		} else {
			fmt.Fprintln(stderr, "drive: no first answer, no upgrades:", err)
		}
	}
	if err := <-loadDone; err != nil {
		return err
	}

	counts := load.Count(res.Records)
	out := driveResult{
		Addr: *addr, Proto: *proto, TLS: cfg.TLS != nil, Clients: *clients, DurationS: res.Elapsed.Seconds(),
		Requests: counts.Total(), OK: counts[load.OK], Failed: counts.Failed(), Failures: counts.Failures(),
		Statuses: map[string]int{}, Upgrades: len(ups),
	}
	if cfg.Proto == load.HTTP1 {
		out.Mode = *mode
	}
	for _, r := range res.Records {
		if r.Status == 0 {
			continue
		}
		out.Statuses[fmt.Sprint(r.Status)]++
		if r.Status/100 != 2 {
			out.Non2xx++
		}
		if r.Status/100 == 5 {
			out.Status5xx++
		}
	}
	var hand []time.Duration
	for _, u := range ups {
		if u.Err == nil {
			out.UpgradesOK++
			hand = append(hand, u.Handoff)
		}
	}
	if len(hand) > 0 {
		q := load.Summarize(hand)
		out.Handoff = map[string]float64{"p50": ms(q.P50), "p90": ms(q.P90), "max": ms(q.Max)}
	}
	if len(res.Errors) > 0 {
		out.Errors = map[string]string{}
		for c, err := range res.Errors {
			out.Errors[c.String()] = err.Error()
		}
	}
	fmt.Fprintf(stdout, "%s %s: %d requests, %d failed (%s), %d non-2xx (%d 5xx), statuses %v, upgrades %d/%d\n",
		*addr, *proto, out.Requests, out.Failed, classList(out.Failures), out.Non2xx, out.Status5xx, out.Statuses, out.UpgradesOK, out.Upgrades)
	return json.NewEncoder(stdout).Encode(out)
}
