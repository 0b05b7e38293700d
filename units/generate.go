package units

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/unit"
)

// File is one generated unit file.
type File struct {
	Name    string // "myapp.service", "myapp-http.socket"
	Options []*unit.UnitOption
}

// Bytes returns the unit file's text.
func (f File) Bytes() []byte {
	b, _ := io.ReadAll(unit.Serialize(f.Options)) // reads a bytes.Buffer: never fails
	return b
}

// Generate checks spec and returns its units: the service first, then one
// socket unit per socket in spec order. A bad spec returns a *SpecError
// naming the field and value, and no files.
func Generate(spec Spec) ([]File, error) {
	r, err := spec.resolve()
	if err != nil {
		return nil, err
	}
	files := []File{r.service()}
	for _, s := range r.sockets {
		files = append(files, r.socket(s))
	}
	return files, nil
}

type options []*unit.UnitOption

func (o *options) add(section, name string, values ...string) {
	for _, v := range values {
		*o = append(*o, unit.NewUnitOption(section, name, v))
	}
}

func (r *resolved) serviceName() string { return r.Name + ".service" }

func (r *resolved) service() File {
	var o options
	o.add("Unit", "Description", escapeSpecifiers(r.Description))
	for _, s := range r.sockets {
		o.add("Unit", "Requires", s.unit)
		o.add("Unit", "After", s.unit)
	}

	const svc = "Service"
	if r.SystemdVersion >= NotifyReloadVersion && !r.Run {
		// The manager follows the upgrade through RELOADING=1 ...
		// READY=1. It also sends ReloadSignal= to the main process before
		// it runs ExecReload=: a signal ignored by default, so that only
		// ExecReload= starts the upgrade (SIGHUP would start a second).
		o.add(svc, "Type", "notify-reload")
		o.add(svc, "ReloadSignal", "SIGWINCH")
	} else {
		o.add(svc, "Type", "notify")
	}
	// The old main process hands over with MAINPID=<successor> and
	// READY=1 itself, which the manager accepts from the main process
	// under any NotifyAccess=; after that the successor is the main
	// process. Nothing else needs to talk to the manager. Under baton run
	// the main process is baton, which speaks for its CMDs.
	o.add(svc, "NotifyAccess", "main")
	if r.Run {
		o.add(svc, "ExecStart", execLine(r.runLine()))
	} else {
		o.add(svc, "ExecStart", execLine(r.Exec))
	}
	// Synchronous: baton reload returns only when the new generation
	// serves, and fails when the upgrade fails, so systemctl reload
	// reports it (notify-reload alone has no way to fail a reload).
	reload := []string{r.Baton, "reload", "--pid"}
	if r.WatchWindow > 0 {
		// Until the window's end: a rollback fails the reload.
		reload = []string{r.Baton, "reload", "--wait-window", "--pid"}
	}
	o.add(svc, "ExecReload", execLine(reload)+" $MAINPID")
	if !r.Run {
		// After an upgrade the main process is not the manager's child,
		// and the manager does not wait for a main process that is not
		// its child: on stop it would follow SIGTERM with SIGKILL at
		// once. It waits for ExecStop=, which sends SIGTERM and returns
		// when the process has drained and exited. baton run stays the
		// main process and the manager's child: it needs none.
		o.add(svc, "ExecStop", execLine([]string{r.Baton, "stop", "--pid"})+" $MAINPID")
	}
	for _, s := range r.sockets {
		o.add(svc, "Sockets", s.unit)
	}
	if r.FDStoreMax > 0 {
		o.add(svc, "FileDescriptorStoreMax", fmt.Sprint(r.FDStoreMax))
	}
	o.add(svc, "TimeoutStartSec", duration(r.ReadyTimeout+r.WatchWindow+TimeoutSlack))
	// The stop: the service's stop delay, then its drain.
	o.add(svc, "TimeoutStopSec", duration(r.StopDelay+r.DrainTimeout+TimeoutSlack))
	if r.Watchdog > 0 {
		o.add(svc, "WatchdogSec", duration(r.Watchdog))
	}
	// control-group: on stop every generation, draining ones included,
	// gets SIGTERM and TimeoutStopSec to finish. mixed would SIGKILL a
	// draining old generation as soon as the current one exits.
	// Under baton run, mixed: baton alone gets SIGTERM and passes it on
	// to its CMDs once (and SIGKILLs a draining one itself after its
	// drain); every process gets SIGKILL at TimeoutStopSec.
	if r.Run {
		o.add(svc, "KillMode", "mixed")
	} else {
		o.add(svc, "KillMode", "control-group")
	}
	o.add(svc, "Restart", "on-failure")
	r.hardening(&o)

	o.add("Install", "WantedBy", "multi-user.target")
	for _, s := range r.sockets {
		o.add("Install", "Also", s.unit)
	}
	return File{Name: r.serviceName(), Options: o}
}

// runLine is ExecStart= under baton run: baton's own deadlines are the
// spec's, and it passes on every socket systemd gives it.
func (r *resolved) runLine() []string {
	line := []string{r.Baton, "run"}
	if r.ReadyExec {
		line = append(line, "--ready", "exec")
	}
	line = append(line, "--ready-timeout", r.ReadyTimeout.String(), "--drain", r.DrainTimeout.String())
	if r.StopDelay > 0 {
		line = append(line, "--stop-delay", r.StopDelay.String())
	}
	if r.WatchWindow > 0 {
		line = append(line, "--watch-window", r.WatchWindow.String())
	}
	line = append(line, "--")
	return append(line, r.Exec...)
}

// hardening adds the sandbox. Every line is there for systemd-analyze
// security's score or for defence in depth; the Spec's switches relax the
// few a real service may need.
func (r *resolved) hardening(o *options) {
	const svc = "Service"
	if r.User != "" {
		o.add(svc, "User", r.User)
	} else {
		o.add(svc, "DynamicUser", "yes")
	}
	if r.StateDirectory {
		o.add(svc, "StateDirectory", r.Name)
	}
	if len(r.Writable) > 0 {
		quoted := make([]string, len(r.Writable))
		for i, p := range r.Writable {
			quoted[i] = pathWord(p)
		}
		o.add(svc, "ReadWritePaths", strings.Join(quoted, " "))
	}
	for _, c := range r.Credentials {
		o.add(svc, "LoadCredential", escapeSpecifiers(c))
	}
	o.add(svc, "UMask", "0077")
	o.add(svc, "NoNewPrivileges", "yes")
	o.add(svc, "CapabilityBoundingSet", "")
	o.add(svc, "AmbientCapabilities", "")
	o.add(svc, "ProtectSystem", "strict")
	o.add(svc, "ProtectHome", "yes")
	o.add(svc, "PrivateTmp", "yes")
	o.add(svc, "PrivateDevices", "yes")
	o.add(svc, "DevicePolicy", "closed")
	o.add(svc, "PrivateUsers", "yes")
	o.add(svc, "PrivateIPC", "yes")
	o.add(svc, "PrivateMounts", "yes")

	// The network: with every socket from a socket unit and no outbound
	// network the service needs none of its own. baton reload's control
	// channel is an abstract unix socket in the service's network
	// namespace, which ExecReload= shares.
	families := "AF_UNIX" // sd_notify and the control channel
	switch {
	case r.AllowNetwork:
		families += " AF_INET AF_INET6"
		if len(r.AllowIP) > 0 {
			o.add(svc, "IPAddressAllow", strings.Join(r.AllowIP, " "))
			o.add(svc, "IPAddressDeny", "any")
		}
	case len(r.sockets) == 0:
		// It binds its own sockets: loopback only until AllowNetwork.
		families += " AF_INET AF_INET6"
		o.add(svc, "IPAddressAllow", "localhost")
		o.add(svc, "IPAddressDeny", "any")
	default:
		o.add(svc, "PrivateNetwork", "yes")
		o.add(svc, "IPAddressDeny", "any")
	}
	o.add(svc, "RestrictAddressFamilies", families)

	o.add(svc, "ProtectHostname", "yes")
	o.add(svc, "ProtectClock", "yes")
	o.add(svc, "ProtectKernelTunables", "yes")
	o.add(svc, "ProtectKernelModules", "yes")
	o.add(svc, "ProtectKernelLogs", "yes")
	o.add(svc, "ProtectControlGroups", "yes")
	o.add(svc, "ProtectProc", "invisible")
	o.add(svc, "ProcSubset", "pid")
	o.add(svc, "KeyringMode", "private")
	o.add(svc, "RestrictNamespaces", "yes")
	o.add(svc, "RestrictRealtime", "yes")
	o.add(svc, "RestrictSUIDSGID", "yes")
	o.add(svc, "LockPersonality", "yes")
	o.add(svc, "MemoryDenyWriteExecute", "yes")
	o.add(svc, "RemoveIPC", "yes")
	o.add(svc, "SystemCallArchitectures", "native")
	o.add(svc, "SystemCallFilter", "@system-service", "~@privileged @resources")
	// A denied call fails with EPERM instead of killing the process: the
	// Go runtime's best-effort setrlimit at start and in forked children
	// tolerates that.
	o.add(svc, "SystemCallErrorNumber", "EPERM")
}

func (r *resolved) socket(s resolvedSocket) File {
	var o options
	o.add("Unit", "Description", escapeSpecifiers(r.Description)+" socket "+s.Name)
	key := "ListenDatagram"
	if s.addr.Stream() {
		key = "ListenStream"
	}
	listen, v6only := listenValue(s)
	o.add("Socket", key, listen)
	if v6only {
		o.add("Socket", "BindIPv6Only", "ipv6-only")
	}
	o.add("Socket", "FileDescriptorName", s.Name)
	o.add("Socket", "Service", r.serviceName())
	o.add("Install", "WantedBy", "sockets.target")
	return File{Name: s.unit, Options: o}
}

// listenValue returns the ListenStream=/ListenDatagram= value, and whether
// the socket must be IPv6 only (tcp6://, udp6://).
func listenValue(s resolvedSocket) (string, bool) {
	if s.addr.Network == "unix" {
		return escapeSpecifiers(s.addr.Address), false
	}
	host, port, _ := net.SplitHostPort(s.addr.Address) // checked by sockurl
	switch s.addr.Network {
	case "tcp4", "udp4":
		if host == "" {
			host = "0.0.0.0"
		}
		return net.JoinHostPort(host, port), false
	case "tcp6", "udp6":
		if host == "" {
			host = "::"
		}
		return net.JoinHostPort(host, port), true
	}
	if host == "" {
		return port, false // every address of both families
	}
	return net.JoinHostPort(host, port), false
}

// duration formats d for a systemd time span: whole seconds as "Ns",
// anything finer as "Nms".
func duration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", (d+time.Millisecond-1)/time.Millisecond)
}

// escapeSpecifiers makes "%" literal in values where systemd expands
// specifiers.
func escapeSpecifiers(s string) string { return strings.ReplaceAll(s, "%", "%%") }

// execLine quotes a command line for ExecStart=: each word reaches the
// program exactly as given, with "%" and "$" literal.
func execLine(words []string) string {
	var b bytes.Buffer
	for i, w := range words {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(execWord(w))
	}
	return b.String()
}

// pathWord quotes a path for a space-separated list such as
// ReadWritePaths=, with "%" literal.
func pathWord(p string) string {
	p = escapeSpecifiers(p)
	if !strings.ContainsAny(p, " \t\"'\\") {
		return p
	}
	p = strings.ReplaceAll(p, `\`, `\\`)
	p = strings.ReplaceAll(p, `"`, `\"`)
	return `"` + p + `"`
}

func execWord(w string) string {
	w = strings.ReplaceAll(w, "%", "%%")
	w = strings.ReplaceAll(w, "$", "$$")
	if w == ";" {
		return `\;` // a lone ";" separates commands
	}
	if w != "" && !strings.ContainsAny(w, " \t\"'\\") {
		return w
	}
	w = strings.ReplaceAll(w, `\`, `\\`)
	w = strings.ReplaceAll(w, `"`, `\"`)
	return `"` + w + `"`
}
