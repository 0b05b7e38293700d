package units

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/batonhq/baton/activation"
	"github.com/batonhq/baton/internal/sockurl"
)

// Defaults for the zero values of Spec.
const (
	// DefaultSystemdVersion is the systemd the units target when
	// Spec.SystemdVersion is 0: Debian 12's.
	DefaultSystemdVersion = 252

	// DefaultBaton is the baton command ExecReload= runs when Spec.Baton is
	// empty. A fixed, installed path rather than the path of whatever binary
	// generated the units: `go run` and build directories are not where the
	// service will find baton, and the output stays reproducible.
	DefaultBaton = "/usr/local/bin/baton"

	// DefaultDrainTimeout is how long an old generation may drain when
	// Spec.DrainTimeout is 0.
	DefaultDrainTimeout = 30 * time.Second

	// DefaultReadyTimeout is how long a new generation may take to become
	// ready when Spec.ReadyTimeout is 0. It sets TimeoutStartSec= (which
	// also bounds ExecReload=), above handoff's own 5s for a successor;
	// with Run it is also baton run's --ready-timeout, whose default when
	// run by hand is systemd's 90s.
	DefaultReadyTimeout = 10 * time.Second

	// TimeoutSlack is added to the drain and ready timeouts to get
	// TimeoutStopSec= and TimeoutStartSec=, so that the manager's own
	// deadline never fires before the service's.
	TimeoutSlack = 5 * time.Second

	// MinSystemdVersion is the oldest systemd that knows every hardening
	// option the service uses (PrivateIPC= came in 248).
	MinSystemdVersion = 248

	// NotifyReloadVersion is the first systemd that knows Type=notify-reload.
	NotifyReloadVersion = 253
)

// Spec describes one service and its sockets. The zero value of every field
// but Name and Exec is valid and gives the hardened default.
type Spec struct {
	// Name is the service's unit name without ".service": "myapp" gives
	// myapp.service and one myapp-SOCKET.socket per socket. Letters, digits
	// and ":_.-".
	Name string

	// Description is the units' Description=; empty gives Name.
	Description string

	// Exec is the program and its arguments; Exec[0] must be an absolute
	// path. Arguments are quoted and escaped for ExecStart=: "%" and "$"
	// reach the program literally.
	Exec []string

	// Sockets are the sockets systemd binds and passes to the service, each
	// in its own socket unit with FileDescriptorName= set to its name. With
	// no sockets the service binds its own (and may keep them in the fd
	// store, see FDStoreMax).
	Sockets []Socket

	// DrainTimeout is how long an old generation may take to drain;
	// TimeoutStopSec= is StopDelay + DrainTimeout + TimeoutSlack. Zero
	// means DefaultDrainTimeout.
	DrainTimeout time.Duration

	// StopDelay is the service's own lame duck before it drains on stop
	// (handoff.Config.StopDelay, `baton run --stop-delay`); it only
	// lengthens TimeoutStopSec=, and is given to nothing else: the
	// program's arguments in Exec set it. Zero means none.
	StopDelay time.Duration

	// ReadyTimeout is how long a new generation may take to be ready, at
	// start and at each upgrade; TimeoutStartSec= (which also bounds
	// ExecReload=) is ReadyTimeout + TimeoutSlack. Zero means
	// DefaultReadyTimeout.
	ReadyTimeout time.Duration

	// WatchWindow is the service's watch window after each upgrade
	// (handoff.Config.WatchWindow, `baton run --watch-window`), which the
	// program's arguments in Exec set. With it ExecReload= waits for the
	// window's end (`baton reload --wait-window`), so that `systemctl
	// reload` fails when the new generation was rolled back, and
	// TimeoutStartSec= (which bounds ExecReload=) adds it. Zero means
	// none: the reload returns at the cut-over.
	WatchWindow time.Duration

	// Watchdog sets WatchdogSec=; zero means no watchdog.
	Watchdog time.Duration

	// FDStoreMax sets FileDescriptorStoreMax= for a service without
	// sockets, so the sockets it binds itself survive a restart. It is
	// refused together with Sockets: the store would hand the service a
	// second copy of each socket unit's fd.
	FDStoreMax int

	// SystemdVersion is the version of the systemd that will run the units;
	// zero means DefaultSystemdVersion. From NotifyReloadVersion on the
	// service is Type=notify-reload.
	SystemdVersion int

	// Baton is the absolute path of the baton command for ExecReload=;
	// empty means DefaultBaton.
	Baton string

	// AllowNetwork lets the service make its own network connections:
	// PrivateNetwork= off, AF_INET and AF_INET6 allowed, and no IP address
	// filter unless AllowIP is set.
	AllowNetwork bool

	// AllowIP, with AllowNetwork, limits the addresses the service's own
	// sockets may talk to (IPAddressAllow= plus IPAddressDeny=any). Each is
	// an address, a prefix, or one of systemd's names: localhost,
	// link-local, multicast, any.
	AllowIP []string

	// StateDirectory gives the service a writable /var/lib/NAME
	// (StateDirectory=NAME, found through $STATE_DIRECTORY); everything
	// else stays read-only.
	StateDirectory bool

	// User runs the service as this existing user instead of a dynamic
	// one. root and nobody are refused.
	User string

	// Writable lists absolute paths the service may write to
	// (ReadWritePaths=); the rest of the file system stays read-only.
	// The paths must exist, and the service's user (a dynamic one unless
	// User is set) still needs the permission to write there.
	Writable []string

	// Credentials are "ID:PATH" pairs for LoadCredential=: systemd reads
	// PATH as root before the service starts and gives the service a
	// private copy, $CREDENTIALS_DIRECTORY/ID, readable by its user alone.
	// The way to hand a root-only file (a 0600 config, a key) to a
	// dynamic user.
	Credentials []string

	// Run runs Exec under `baton run` (ExecStart=BATON run ... -- Exec),
	// for a program that does not upgrade itself: baton holds the sockets,
	// stays the main process, starts the new Exec at each reload and stops
	// the old one once the new one is ready. ReadyTimeout, DrainTimeout,
	// StopDelay and WatchWindow become baton run's flags. The service is
	// then Type=notify whatever SystemdVersion says, KillMode=mixed (baton
	// passes the stop signal on once) and has no ExecStop= (the main
	// process stays systemd's child).
	Run bool

	// ReadyExec, with Run, is for a program that never sends READY=1:
	// `baton run --ready exec`, ready once it has kept running
	// ReadyTimeout.
	ReadyExec bool
}

// Socket is one named socket of a Spec.
type Socket struct {
	// Name is the socket's FileDescriptorName=, the name the service looks
	// it up by, and part of its unit name. Letters, digits and "_.-".
	Name string

	// URL is where it listens: tcp://HOST:PORT (tcp4, tcp6), udp://HOST:PORT
	// (udp4, udp6), unix:/PATH or unix:@ABSTRACT. An empty HOST means every
	// address.
	URL string
}

// ErrInvalid is matched (errors.Is) by every error about a bad Spec.
var ErrInvalid = errors.New("invalid unit spec")

// SpecError is a bad field of a Spec: it names the field and its value.
type SpecError struct {
	Field  string // "Name", "Exec[0]", "Sockets[1].URL", ...
	Value  string
	Reason string
	Err    error // the underlying parse error, if any
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Reason)
}

// Unwrap returns ErrInvalid and the underlying error.
func (e *SpecError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalid, e.Err}
	}
	return []error{ErrInvalid}
}

// unitNameMax is the longest unit name systemd accepts, suffix included.
const unitNameMax = 255

// reservedFDNames have a meaning of their own in LISTEN_FDNAMES.
var reservedFDNames = map[string]string{
	"stored":     "the name of fd-store entries without FDNAME",
	"connection": "the name of Accept=yes connections",
	"unknown":    "the name of every fd when LISTEN_FDNAMES is absent",
}

// resolved is a validated Spec with its defaults filled in.
type resolved struct {
	Spec
	sockets []resolvedSocket
}

type resolvedSocket struct {
	Socket
	addr sockurl.Addr
	unit string // NAME-SOCKET.socket
}

func (s *Spec) resolve() (*resolved, error) {
	r := &resolved{Spec: *s}
	if r.SystemdVersion == 0 {
		r.SystemdVersion = DefaultSystemdVersion
	}
	if r.Baton == "" {
		r.Baton = DefaultBaton
	}
	if r.DrainTimeout == 0 {
		r.DrainTimeout = DefaultDrainTimeout
	}
	if r.ReadyTimeout == 0 {
		r.ReadyTimeout = DefaultReadyTimeout
	}
	if r.Description == "" {
		r.Description = r.Name
	}

	if err := checkUnitName("Name", s.Name, ".service"); err != nil {
		return nil, err
	}
	if err := checkText("Description", r.Description); err != nil {
		return nil, err
	}
	if len(s.Exec) == 0 {
		return nil, &SpecError{Field: "Exec", Value: "", Reason: "no program given"}
	}
	for i, arg := range s.Exec {
		if err := checkText(fmt.Sprintf("Exec[%d]", i), arg); err != nil {
			return nil, err
		}
	}
	if !filepath.IsAbs(s.Exec[0]) {
		return nil, &SpecError{Field: "Exec[0]", Value: s.Exec[0], Reason: "program path is not absolute"}
	}
	if err := checkAbsPath("Baton", r.Baton); err != nil {
		return nil, err
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"DrainTimeout", s.DrainTimeout}, {"StopDelay", s.StopDelay}, {"ReadyTimeout", s.ReadyTimeout}, {"WatchWindow", s.WatchWindow}, {"Watchdog", s.Watchdog}} {
		if d.v < 0 {
			return nil, &SpecError{Field: d.field, Value: d.v.String(), Reason: "negative duration"}
		}
		if d.v != 0 && d.v < time.Millisecond {
			return nil, &SpecError{Field: d.field, Value: d.v.String(), Reason: "shorter than systemd's 1ms resolution"}
		}
	}
	if s.SystemdVersion < 0 || s.SystemdVersion > 0 && s.SystemdVersion < MinSystemdVersion {
		return nil, &SpecError{
			Field: "SystemdVersion", Value: fmt.Sprint(s.SystemdVersion),
			Reason: fmt.Sprintf("want %d or newer (0 means %d)", MinSystemdVersion, DefaultSystemdVersion),
		}
	}
	if s.FDStoreMax < 0 {
		return nil, &SpecError{Field: "FDStoreMax", Value: fmt.Sprint(s.FDStoreMax), Reason: "negative"}
	}
	if s.FDStoreMax > 0 && len(s.Sockets) > 0 {
		return nil, &SpecError{
			Field: "FDStoreMax", Value: fmt.Sprint(s.FDStoreMax),
			Reason: "only for a service without socket units (the store would pass a second copy of each socket)",
		}
	}
	if s.ReadyExec && !s.Run {
		return nil, &SpecError{Field: "ReadyExec", Value: "true", Reason: "needs Run (a program under baton run)"}
	}
	if len(s.AllowIP) > 0 && !s.AllowNetwork {
		return nil, &SpecError{Field: "AllowIP", Value: strings.Join(s.AllowIP, " "), Reason: "needs AllowNetwork"}
	}
	for i, ip := range s.AllowIP {
		if err := checkIP(fmt.Sprintf("AllowIP[%d]", i), ip); err != nil {
			return nil, err
		}
	}
	if s.User != "" {
		if err := checkUser(s.User); err != nil {
			return nil, err
		}
	}
	for i, p := range s.Writable {
		if err := checkAbsPath(fmt.Sprintf("Writable[%d]", i), p); err != nil {
			return nil, err
		}
	}
	for i, c := range s.Credentials {
		if err := checkCredential(fmt.Sprintf("Credentials[%d]", i), c); err != nil {
			return nil, err
		}
	}

	seen := map[string]int{}
	for i, sock := range s.Sockets {
		field := fmt.Sprintf("Sockets[%d]", i)
		if err := checkSocketName(field+".Name", sock.Name); err != nil {
			return nil, err
		}
		if j, dup := seen[sock.Name]; dup {
			return nil, &SpecError{Field: field + ".Name", Value: sock.Name, Reason: fmt.Sprintf("duplicate socket name (also Sockets[%d])", j)}
		}
		seen[sock.Name] = i
		unitName := s.Name + "-" + sock.Name + ".socket"
		if len(unitName) > unitNameMax {
			return nil, &SpecError{
				Field: field + ".Name", Value: sock.Name,
				Reason: fmt.Sprintf("socket unit name %s is longer than %d bytes", unitName, unitNameMax),
			}
		}
		addr, err := sockurl.Parse(sock.URL)
		if err != nil {
			var perr *sockurl.Error
			reason := err.Error()
			if errors.As(err, &perr) {
				reason = perr.Reason
			}
			return nil, &SpecError{Field: field + ".URL", Value: sock.URL, Reason: reason, Err: err}
		}
		r.sockets = append(r.sockets, resolvedSocket{Socket: sock, addr: addr, unit: unitName})
	}
	return r, nil
}

func isUnitNameChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(":_.-", c)
}

// checkCredential checks an "ID:PATH" pair of LoadCredential=.
func checkCredential(field, c string) error {
	id, path, ok := strings.Cut(c, ":")
	switch {
	case !ok || id == "":
		return &SpecError{Field: field, Value: c, Reason: "want ID:PATH"}
	case strings.ContainsAny(id, "/ \t\n") || id == "." || id == "..":
		return &SpecError{Field: field, Value: c, Reason: fmt.Sprintf("credential ID %q must be a plain file name", id)}
	}
	if err := checkText(field, c); err != nil {
		return err
	}
	return checkAbsPath(field, path)
}

func checkUnitName(field, name, suffix string) error {
	switch {
	case name == "":
		return &SpecError{Field: field, Value: name, Reason: "empty"}
	case len(name)+len(suffix) > unitNameMax:
		return &SpecError{Field: field, Value: name, Reason: fmt.Sprintf("unit name longer than %d bytes", unitNameMax)}
	case strings.HasSuffix(name, suffix) || strings.HasSuffix(name, ".socket"):
		return &SpecError{Field: field, Value: name, Reason: "give the name without a unit suffix"}
	}
	for _, c := range name {
		if !isUnitNameChar(c) {
			return &SpecError{Field: field, Value: name, Reason: fmt.Sprintf("%q cannot be part of a unit name (want letters, digits and \":_.-\")", c)}
		}
	}
	return nil
}

func checkSocketName(field, name string) error {
	if name == "" {
		return &SpecError{Field: field, Value: name, Reason: "empty"}
	}
	if err := activation.CheckName(name); err != nil {
		return &SpecError{Field: field, Value: name, Reason: err.Error()}
	}
	if why, ok := reservedFDNames[name]; ok {
		return &SpecError{Field: field, Value: name, Reason: "reserved: " + why}
	}
	for _, c := range name {
		if c == ':' || !isUnitNameChar(c) {
			return &SpecError{Field: field, Value: name, Reason: fmt.Sprintf("%q cannot be part of a socket name (want letters, digits and \"_.-\")", c)}
		}
	}
	return nil
}

// checkText refuses what cannot be written on one line of a unit file.
func checkText(field, s string) error {
	for _, c := range s {
		if c < ' ' || c == 0x7f {
			return &SpecError{Field: field, Value: s, Reason: fmt.Sprintf("contains the control character %q", c)}
		}
	}
	return nil
}

func checkAbsPath(field, p string) error {
	if err := checkText(field, p); err != nil {
		return err
	}
	if !filepath.IsAbs(p) {
		return &SpecError{Field: field, Value: p, Reason: "path is not absolute"}
	}
	return nil
}

func checkIP(field, s string) error {
	switch s {
	case "any", "localhost", "link-local", "multicast":
		return nil
	}
	if _, err := netip.ParsePrefix(s); err == nil {
		return nil
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return nil
	}
	return &SpecError{Field: field, Value: s, Reason: "want an IP address, a prefix, or any, localhost, link-local, multicast"}
}

// checkUser accepts what systemd's User= accepts in its strict mode, and
// refuses root.
func checkUser(u string) error {
	switch u {
	case "root", "0":
		return &SpecError{Field: "User", Value: u, Reason: "refusing to run the service as root"}
	case "nobody", "65534":
		return &SpecError{Field: "User", Value: u, Reason: "nobody owns files shared by everything that runs as nobody; give the service a user of its own"}
	}
	if len(u) > 31 {
		return &SpecError{Field: "User", Value: u, Reason: "longer than 31 bytes"}
	}
	for i, c := range u {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' ||
			i > 0 && (c >= '0' && c <= '9' || c == '-')
		if !ok && !allDigits(u) {
			return &SpecError{Field: "User", Value: u, Reason: "not a valid user name (letters, digits, \"_-\", not starting with a digit or \"-\") or uid"}
		}
	}
	return nil
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
