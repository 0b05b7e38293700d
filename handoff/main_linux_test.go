package handoff

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/internal/testproc"
)

// Knobs of the "server" helper, set by the tests in its environment (and so
// inherited by every generation).
const (
	envFault        = "BATON_TEST_FAULT"         // exit, hang, die-after-ready, stop-after-ready, gate, proto, no-wait
	envFaultFile    = "BATON_TEST_FAULT_FILE"    // the fault applies once: to the successor that removes this file
	envGate         = "BATON_TEST_GATE"          // "gate": wait for this file before Ready
	envStarted      = "BATON_TEST_STARTED"       // "gate": create this file when waiting
	envReadyTimeout = "BATON_TEST_READY_TIMEOUT" // Config.ReadyTimeout
	envUnix         = "BATON_TEST_UNIX"          // also serve HTTP on this unix socket path ("sock")
	envVerbose      = "BATON_TEST_VERBOSE"       // log to stderr
	envRefused      = "BATON_TEST_REFUSED"       // a file: refused lifecycle transitions are appended to it
	envLate         = "BATON_TEST_LATE"          // a file: generation 1 listens on "late" before Ready and writes its address there; a successor listens on it after Ready and writes the outcome to FILE.result
	envUDP          = "BATON_TEST_UDP"           // also answer datagrams on "echo" with the pid
	envJournal      = "BATON_TEST_JOURNAL"       // append "generation N" to this file, opened once as "journal"
	envStopDelay    = "BATON_TEST_STOP_DELAY"    // Config.StopDelay
	envMaxDraining  = "BATON_TEST_MAX_DRAINING"  // Config.MaxDraining
	envFakeDraining = "BATON_TEST_FAKE_DRAINING" // generation 1 starts with these draining generations: PID:START,... (generation 0)
	envDrift        = "BATON_TEST_DRIFT"         // appended "+" at start-up, answered as X-Drift
	envExtra        = "BATON_TEST_EXTRA"         // also serve HTTP on "extra", at the address this file names (none if empty)
	envPause        = "BATON_TEST_PAUSE"         // a directory: pause at the stage its file "pause" names (pauseAt)
	envTestWatch    = "BATON_TEST_WATCH"         // Config.WatchWindow
	envDieAfter     = "BATON_TEST_DIE_AFTER"     // fault "die-serving": exit 5 this long after Ready returned
)

func TestMain(m *testing.M) {
	testproc.Register("server", serverMain)
	testproc.Register("sleep", func() { time.Sleep(time.Hour) })
	if _, helper := os.LookupEnv(testproc.EnvHelper); !helper {
		// Generations orphaned by their exiting predecessors are reparented
		// to the test, which reaps them (reaper in harness_test.go).
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			fmt.Fprintln(os.Stderr, "subreaper:", err)
			os.Exit(2)
		}
	}
	testproc.Main(m)
}

var goSystemdFiles []*os.File

// serverMain is examples/http with fault injection.
func serverMain() {
	// What go-systemd's activation sees, before New unsets the variables.
	// The files stay referenced: their finalizers would close fds 3...
	goSystemdFiles = activation.Files(false)
	var seen []string
	for _, f := range goSystemdFiles {
		seen = append(seen, f.Name())
	}
	if v, ok := os.LookupEnv(envDrift); ok {
		_ = os.Setenv(envDrift, v+"+") // as a start-up PATH+= does
	}
	drift := os.Getenv(envDrift)
	fault, faultArg := "", ""
	if f := os.Getenv(envFaultFile); f != "" {
		b, _ := os.ReadFile(f)
		faultArg = strings.TrimSpace(string(b))
	}
	if f := os.Getenv(envFaultFile); f != "" && os.Remove(f) == nil {
		fault = os.Getenv(envFault)
		_ = os.WriteFile(f+".taken", nil, 0o600)
	}
	if fault == "proto" {
		protoVersion = 2
	}
	cfg := Config{}
	if d, err := time.ParseDuration(os.Getenv(envReadyTimeout)); err == nil {
		cfg.ReadyTimeout = d
	}
	if d, err := time.ParseDuration(os.Getenv(envStopDelay)); err == nil {
		cfg.StopDelay = d
	}
	if d, err := time.ParseDuration(os.Getenv(envTestWatch)); err == nil {
		cfg.WatchWindow = d
	}
	if n, err := strconv.Atoi(os.Getenv(envMaxDraining)); err == nil {
		cfg.MaxDraining = n
	}
	cfg.Logger = slog.New(slog.DiscardHandler) // a nil Logger is slog.Default()
	if os.Getenv(envVerbose) != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("pid", os.Getpid())
	}
	up, err := New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
	defer up.Close()
	if v := os.Getenv(envFakeDraining); v != "" && up.Generation() == 1 {
		for _, e := range strings.Split(v, ",") {
			var p procRef
			if _, err := fmt.Sscanf(e, "%d:%d", &p.pid, &p.start); err != nil {
				fmt.Fprintln(os.Stderr, "server:", envFakeDraining, err)
				os.Exit(1)
			}
			up.draining = append(up.draining, p)
		}
	}
	if os.Getenv(envFault) == "die-after-ready" {
		// As the predecessor: let the successor die before MAINPID.
		up.beforeHandOver = func(pid int) {
			if os.Remove(os.Getenv(envFaultFile)+".taken") == nil {
				waitExit(pid)
			}
		}
	}
	if dir := os.Getenv(envPause); dir != "" {
		if up.beforeHandOver != nil {
			fmt.Fprintln(os.Stderr, "server:", envPause, "and", envFault, "=die-after-ready exclude each other")
			os.Exit(1)
		}
		up.beforeHandOver = func(pid int) { pauseAt(dir, stageOldReady, pid) }
		up.beforeMain = func(pid int) { pauseAt(dir, stageOldHandOver, pid) }
	}
	ln, err := up.Listen("http", "tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
	pid, gen := strconv.Itoa(os.Getpid()), strconv.Itoa(up.Generation())
	// hooks counts the runs of the main server's RegisterOnShutdown hook:
	// once, at the drain; a generation that ran it more often exits 9.
	var hooks atomic.Int32
	defer func() {
		if hooks.Load() > 1 {
			fmt.Fprintln(os.Stderr, "server: shutdown hook ran", hooks.Load(), "times")
			os.Exit(9)
		}
	}()
	if path := os.Getenv(envRefused); path != "" {
		up.onRefused = func(err error) { appendLine(path, pid+" "+err.Error()) }
	}
	activated := strings.Join(seen, ",")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			select {
			case <-up.Stopping():
				http.Error(w, "stopping", http.StatusServiceUnavailable)
			default:
				_, _ = io.WriteString(w, "ok\n")
			}
			return
		}
		if ms, err := strconv.Atoi(r.URL.Query().Get("ms")); err == nil && ms > 0 {
			time.Sleep(min(time.Duration(ms)*time.Millisecond, 10*time.Second))
		}
		if gate := r.URL.Query().Get("wait"); gate != "" {
			waitFile(gate)
		}
		w.Header().Set("X-Pid", pid)
		w.Header().Set("X-Hooks", strconv.Itoa(int(hooks.Load())))
		w.Header().Set("X-Generation", gen)
		w.Header().Set("X-Activation", activated)
		w.Header().Set("X-Drift", drift)
		fmt.Fprintf(w, "pid %s generation %s\n", pid, gen)
	})
	main := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	main.RegisterOnShutdown(func() { hooks.Add(1) })
	up.Serve(HTTP(main, ln))
	if path := os.Getenv(envUnix); path != "" {
		uln, err := up.Listen("sock", "unix", path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "server:", err)
			os.Exit(1)
		}
		up.Serve(HTTP(&http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, uln))
	}
	if path := os.Getenv(envExtra); path != "" {
		if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) != "" {
			eln, err := up.Listen("extra", "tcp", strings.TrimSpace(string(b)))
			if err != nil {
				fmt.Fprintln(os.Stderr, "server:", err)
				os.Exit(1)
			}
			up.Serve(HTTP(&http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, eln))
		}
	}
	if os.Getenv(envUDP) != "" {
		pc, err := up.ListenPacket("echo", "udp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, "server:", err)
			os.Exit(1)
		}
		up.Serve(udpEcho(pc, pid))
	}
	if path := os.Getenv(envJournal); path != "" {
		f, err := up.File("journal", func() (*os.File, error) {
			return os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "server:", err)
			os.Exit(1)
		}
		fmt.Fprintf(f, "generation %s\n", gen)
		_ = f.Close()
	}
	switch fault {
	case "exit":
		os.Exit(3)
	case "hang":
		select {}
	case "die-after-ready":
		up.afterReadySent = func() { os.Exit(4) }
	case "stop-after-ready":
		up.afterReadySent = up.Stop // what SIGTERM does
	case "gate":
		_ = writeFileAtomic(os.Getenv(envStarted), []byte(pid))
		waitFile(os.Getenv(envGate))
	}
	if dir := os.Getenv(envPause); dir != "" && up.Generation() > 1 {
		pauseAt(dir, stageNewStart, 0)
	}
	late := os.Getenv(envLate)
	if late != "" && up.Generation() == 1 {
		lln, err := up.Listen("late", "tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, "server:", err)
			os.Exit(1)
		}
		_ = writeFileAtomic(late, []byte(lln.Addr().String()))
	}
	if err := up.Ready(); err != nil {
		fmt.Fprintln(os.Stderr, "server: ready:", err)
		os.Exit(1)
	}
	if late != "" && up.Generation() > 1 {
		addr, _ := os.ReadFile(late)
		outcome := "ok"
		if _, err := up.Listen("late", "tcp", string(addr)); err != nil {
			outcome = err.Error()
		}
		_ = writeFileAtomic(late+".result", []byte(outcome))
	}
	if fault == "no-wait" {
		// A program that kept its own signal handling and never calls
		// Wait: the Upgrader drains it all the same.
		select {}
	}
	if fault == "die-serving" {
		// A new version that dies once it serves: after the duration
		// the fault file held, else envDieAfter.
		d, err := time.ParseDuration(faultArg)
		if err != nil {
			d, _ = time.ParseDuration(os.Getenv(envDieAfter))
		}
		time.AfterFunc(d, func() { os.Exit(5) })
	}
	if err := up.Wait(); err != nil {
		fmt.Fprintln(os.Stderr, "server: wait:", err)
		os.Exit(1)
	}
}

// appendLine appends line to the file path.
func appendLine(path, line string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	_, _ = fmt.Fprintln(f, line)
	_ = f.Close()
}

// waitExit blocks until pid has exited (it stays a zombie: not reaped).
func waitExit(pid int) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	for {
		_, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, -1)
		if err != unix.EINTR {
			return
		}
	}
}

// Stages at which a generation of the "server" helper can pause (envPause).
const (
	stageNewStart    = "new-start"    // a successor, initialised, before Ready
	stageOldReady    = "old-ready"    // the predecessor, successor ready, before the liveness check and MAINPID
	stageOldHandOver = "old-handover" // the predecessor, after MAINPID and BARRIER=1, before MAIN
)

// pauseAt pauses this process when the file "pause" in dir names stage:
// it takes the file (renamed to pause.PID: the pause applies once), writes
// "PID STAGE SUCCESSOR" to the file "at" (SUCCESSOR is 0 for the
// successor's own stages) and waits for the file "go.PID".
func pauseAt(dir, stage string, successor int) {
	name := filepath.Join(dir, "pause")
	b, err := os.ReadFile(name)
	if err != nil || strings.TrimSpace(string(b)) != stage {
		return
	}
	self := strconv.Itoa(os.Getpid())
	if os.Rename(name, name+"."+self) != nil {
		return // taken by another process
	}
	at := fmt.Sprintf("%s %s %d", self, stage, successor)
	if err := writeFileAtomic(filepath.Join(dir, "at"), []byte(at)); err != nil {
		fmt.Fprintln(os.Stderr, "server: pause:", err)
		os.Exit(1)
	}
	resume := filepath.Join(dir, "go."+self)
	waitFile(resume)
	_ = os.Remove(resume) // for the next pause of this process
}

// waitFile returns once name exists.
func waitFile(name string) {
	for {
		if _, err := os.Stat(name); err == nil {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// udpEcho answers each datagram with "<pid> <datagram>"; it stops reading
// at Shutdown and answers what it has read.
func udpEcho(pc net.PacketConn, pid string) Server {
	var stopping atomic.Bool
	done := make(chan struct{})
	return ServerFuncs{
		ServeFunc: func() error {
			defer close(done)
			buf := make([]byte, 2048)
			for {
				n, addr, err := pc.ReadFrom(buf)
				if err != nil {
					if stopping.Load() {
						return nil
					}
					return err
				}
				_, _ = pc.WriteTo(append([]byte(pid+" "), buf[:n]...), addr)
			}
		},
		ShutdownFunc: func(ctx context.Context) error {
			stopping.Store(true)
			_ = pc.SetReadDeadline(time.Now())
			select {
			case <-done:
			case <-ctx.Done():
			}
			return pc.Close()
		},
	}
}
