//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/batonhq/baton/internal/exampletest"
	"github.com/batonhq/baton/internal/testproc"
)

func TestMain(m *testing.M) {
	exampletest.Register("metrics", func(pidfile string, _ []string) error {
		return run("127.0.0.1:0", pidfile)
	})
	exampletest.Main(m)
}

// TestMetricsAcrossUpgrades runs the example socket-activated (name
// "http") from a copy of the test binary, upgrades it by SIGHUP to
// generation 2, makes the next upgrade fail (the file on disk replaced by
// a script that exits 3), puts the binary back and upgrades twice more,
// the last time with a request held open in generation 3. It scrapes
// /metrics with a plain client and checks the numbers against what it
// did: generation 4 sees 1 generation draining 1 connection while the
// request is held, then, with the older generations gone, 0 and 0, 3
// upgrades ok, 1 failed, 3 hand-overs timed.
func TestMetricsAcrossUpgrades(t *testing.T) {
	testproc.CheckFDs(t)
	exe := filepath.Join(t.TempDir(), "server")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	testproc.Install(t, self, exe)
	// Upgrades start the file at exe.
	srv := exampletest.Start(t, exampletest.Config{Helper: "metrics", Socket: "http", Exe: exe})
	addr, serving := srv.Addr, srv.PID
	base := "http://" + addr
	upgrade := func() {
		t.Helper()
		old := serving()
		srv.Upgrade()
		// Until the old generation is gone it may still take a new
		// connection: the scrapes below go to the serving one only.
		testproc.WaitGone(t, old)
	}

	upgrade() // generation 2

	// The failed upgrade: SIGHUP gives no answer, the counter does.
	script := filepath.Join(t.TempDir(), "broken")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho broken >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	testproc.Install(t, script, exe)
	if err := syscall.Kill(serving(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var mf map[string]*dto.MetricFamily
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mf = scrape(t, base+"/metrics")
		if upgrades(t, mf, "failed") > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no failed upgrade counted 30 s after SIGHUP with a broken executable")
		}
	}
	if g := gauge(t, mf, "baton_generation"); g != 2 {
		t.Errorf("after the failed upgrade baton_generation = %v, want 2", g)
	}
	checkRoot(t, base+"/", serving(), 2)
	testproc.Install(t, self, exe)

	upgrade() // generation 3

	// Generation 4 while 3 drains a request held open across the upgrade.
	held := holdRequest(t, addr, serving(), 3)
	old := serving()
	srv.Upgrade()
	// Generation 3 may take a scrape's connection until it stops
	// accepting, and count it for a moment: ask until generation 4 answers
	// and sees the held connection only.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mf = scrape(t, base+"/metrics")
		if gauge(t, mf, "baton_generation") == 4 && gauge(t, mf, "baton_draining_connections") == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("while generation 3 drains one request: baton_generation %v, baton_draining_connections %v; want 4 and 1",
				gauge(t, mf, "baton_generation"), gauge(t, mf, "baton_draining_connections"))
		}
	}
	if g := gauge(t, mf, "baton_draining_generations"); g != 1 {
		t.Errorf("while generation 3 drains: baton_draining_generations = %v, want 1", g)
	}
	t.Logf("generation 4 while 3 drains one request: draining %v generations, %v connections",
		gauge(t, mf, "baton_draining_generations"), gauge(t, mf, "baton_draining_connections"))
	_ = held.Close() // the handler returns, generation 3 has drained
	testproc.WaitGone(t, old)

	gens := len(srv.PIDs())
	checkRoot(t, base+"/", serving(), gens)
	mf = scrape(t, base+"/metrics")
	if g := gauge(t, mf, "baton_generation"); g != float64(gens) {
		t.Errorf("baton_generation = %v, want %d (the serving generation)", g, gens)
	}
	for _, c := range []struct {
		outcome string
		want    float64
	}{{"ok", 3}, {"failed", 1}, {"abandoned", 0}} {
		if n := upgrades(t, mf, c.outcome); n != c.want {
			t.Errorf("baton_upgrades_total{outcome=%q} = %v, want %v", c.outcome, n, c.want)
		}
	}
	for _, name := range []string{"baton_draining_generations", "baton_draining_connections"} {
		if g := gauge(t, mf, name); g != 0 {
			t.Errorf("with the older generations gone: %s = %v, want 0", name, g)
		}
	}
	h := histogramOf(t, mf, "baton_handoff_seconds")
	if h.GetSampleCount() < 1 || h.GetSampleSum() <= 0 {
		t.Errorf("baton_handoff_seconds: count %d, sum %v; want at least one hand-over timed",
			h.GetSampleCount(), h.GetSampleSum())
	}
	t.Logf("generation 4 (pid %d) after 3 upgrades and 1 failed: ok %v, failed %v, abandoned %v, handoff_seconds count %d sum %.4f s",
		serving(), upgrades(t, mf, "ok"), upgrades(t, mf, "failed"), upgrades(t, mf, "abandoned"), h.GetSampleCount(), h.GetSampleSum())
}

// holdRequest sends GET /?ms=10000 on a connection of its own and returns
// it once the first line of the body came from pid, generation gen: the
// request is in flight there until the connection is closed.
func holdRequest(t *testing.T, addr string, pid, gen int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "GET /?ms=10000 HTTP/1.1\r\nHost: metrics\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if want := fmt.Sprintf("pid %d generation %d\n", pid, gen); err != nil || line != want {
		t.Fatalf("held request: %q, %v; want %q", line, err, want)
	}
	return c
}

// get fetches url on a connection of its own (no keep-alive: the next
// request must not reach a generation that has handed over).
func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	return resp, body
}

func checkRoot(t *testing.T, url string, pid, gen int) {
	t.Helper()
	resp, body := get(t, url)
	want := fmt.Sprintf("pid %d generation %d\n", pid, gen)
	if string(body) != want || resp.Header.Get("X-Pid") != strconv.Itoa(pid) || resp.Header.Get("X-Generation") != strconv.Itoa(gen) {
		t.Errorf("GET %s = %q, X-Pid %q, X-Generation %q; want %q", url, body, resp.Header.Get("X-Pid"), resp.Header.Get("X-Generation"), want)
	}
}

// scrape fetches url and parses the Prometheus text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	_, body := get(t, url)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse %s: %v\n%s", url, err, body)
	}
	return mf
}

// metric returns the one metric of family name, of type typ, whose labels
// are labels (name, value pairs).
func metric(t *testing.T, mf map[string]*dto.MetricFamily, name string, typ dto.MetricType, labels ...string) *dto.Metric {
	t.Helper()
	f, ok := mf[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	if f.GetType() != typ {
		t.Fatalf("%s is a %v, want a %v", name, f.GetType(), typ)
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel())*2 != len(labels) {
			continue
		}
		for i, l := range m.GetLabel() {
			if l.GetName() != labels[2*i] || l.GetValue() != labels[2*i+1] {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no metric %s%v", name, labels)
	return nil
}

func gauge(t *testing.T, mf map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	return metric(t, mf, name, dto.MetricType_GAUGE).GetGauge().GetValue()
}

func upgrades(t *testing.T, mf map[string]*dto.MetricFamily, outcome string) float64 {
	t.Helper()
	return metric(t, mf, "baton_upgrades_total", dto.MetricType_COUNTER, "outcome", outcome).GetCounter().GetValue()
}

func histogramOf(t *testing.T, mf map[string]*dto.MetricFamily, name string) *dto.Histogram {
	t.Helper()
	return metric(t, mf, name, dto.MetricType_HISTOGRAM).GetHistogram()
}
