package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/batonhq/baton/units"
)

const unitsUsage = `
baton units --name NAME --exec "PATH [ARG]..." [--listen NAME=URL]... [--out DIR] [flags]
baton units --name NAME --run [--listen NAME=URL]... [flags] -- CMD [ARG]...

Writes the units of a service that baton upgrades in place: NAME.service,
and NAME-SOCKET.socket for each --listen. Without --out they go to stdout,
each after a "# FILE" line; with --out they are written into DIR all or
nothing, and their paths printed.

--exec is a server built with baton's handoff package: it upgrades itself,
and ExecReload= (baton reload) asks it to. --run is any other program
that speaks LISTEN_FDS and sd_notify (or none, see baton run --ready):
ExecStart= is 'baton run ... -- CMD [ARG]...', and baton holds the
sockets, starts the new CMD at each reload and stops the old one; add
--ready exec for a CMD that never sends READY=1.

The service is hardened (systemd-analyze security rates it 0.2 with no
flags): a dynamic user, a read-only file system, no network of its own
when every socket comes from a socket unit (not even localhost), no
capabilities, a system call filter. baton units says on stderr, in three
lines, what the sandbox denies and which flag relaxes it: --allow-network
and --allow-ip (connections of its own), --state-dir and --writable
(files it writes), --credential (root-only files it reads, through
LoadCredential=), --user (an existing user).

--systemd-version 253 or newer writes Type=notify-reload with
ReloadSignal=SIGWINCH and keeps ExecReload=baton reload: systemd follows
the upgrade (RELOADING=1 ... READY=1) and the reload still fails when the
upgrade does. With --run the service stays Type=notify: baton run is the
main process and tells systemd about its upgrades itself.

URL is tcp://HOST:PORT, udp://HOST:PORT (tcp4, tcp6, udp4, udp6 pin the
family; an empty HOST means every address), unix:/PATH or unix:@ABSTRACT.
--exec is split into words like a shell does (quotes and backslashes; no
variables or globs).

A bad flag or spec value exits with status 2 and writes nothing. When the
--baton path (ExecReload= and ExecStop= run it) is not an executable file
on this machine, a warning on stderr says how to install it; the units are
written all the same (they may be meant for another machine).`

type unitsCmd struct {
	io    stdio
	flags *flagSet

	name, exec, desc, out, user, baton string
	listen, allowIP                    []string
	drain, stopDelay, ready, watchdog  time.Duration
	watchWindow                        time.Duration
	systemd, fdstore                   int
	allowNetwork, stateDir, run        bool
	readyMode                          string
	writable, credentials              []string
}

func newUnitsCmd(io stdio) command {
	c := &unitsCmd{io: io, flags: newFlagSet("units", unitsUsage, io.Stdout)}
	f := c.flags
	f.StringVar(&c.name, "name", "", "the service's unit name, without .service (required)")
	f.StringVar(&c.exec, "exec", "", "the program, an absolute path, and its arguments (required unless --run)")
	f.Func("listen", "a socket `NAME=URL` passed to the service as NAME (repeatable)", func(s string) error {
		c.listen = append(c.listen, s)
		return nil
	})
	f.StringVar(&c.out, "out", "", "write the files into `DIR` (created if missing) instead of stdout")
	f.StringVar(&c.desc, "description", "", "the units' Description= (default NAME)")
	f.IntVar(&c.systemd, "systemd-version", units.DefaultSystemdVersion,
		"the oldest systemd that will run the units; 253 and newer get Type=notify-reload (ExecReload= stays: it is what fails a failed upgrade's reload)")
	f.DurationVar(&c.drain, "drain", units.DefaultDrainTimeout, "how long an old generation may drain; TimeoutStopSec= adds 5s")
	f.DurationVar(&c.stopDelay, "stop-delay", 0, "the service's stop delay (lame duck) before its drain; TimeoutStopSec= adds it")
	f.DurationVar(&c.watchWindow, "watch-window", 0, "the service's watch window after an upgrade: ExecReload= waits for its end (baton reload --wait-window), TimeoutStartSec= adds it")
	f.DurationVar(&c.ready, "ready-timeout", units.DefaultReadyTimeout, "how long a new generation may take to be ready; TimeoutStartSec= adds 5s")
	f.DurationVar(&c.watchdog, "watchdog", 0, "WatchdogSec= (0: no watchdog)")
	f.IntVar(&c.fdstore, "fdstore", 0, "FileDescriptorStoreMax=, for a service without --listen that binds its own sockets")
	f.BoolVar(&c.allowNetwork, "allow-network", false, "let the service open its own network connections (no PrivateNetwork=, AF_INET and AF_INET6)")
	f.Func("allow-ip", "with --allow-network, the only `ADDR` or PREFIX (or localhost, link-local, multicast) it may talk to (repeatable)", func(s string) error {
		c.allowIP = append(c.allowIP, s)
		return nil
	})
	f.BoolVar(&c.stateDir, "state-dir", false, "give the service a writable /var/lib/NAME (StateDirectory=)")
	f.StringVar(&c.user, "user", "", "run as this existing `USER` instead of a dynamic user")
	f.Func("writable", "let the service write to this existing absolute `PATH` (ReadWritePaths=; repeatable)", func(s string) error {
		c.writable = append(c.writable, s)
		return nil
	})
	f.Func("credential", "hand the service a private copy of the root-only file PATH as $CREDENTIALS_DIRECTORY/ID (`ID:PATH`, LoadCredential=; repeatable)", func(s string) error {
		c.credentials = append(c.credentials, s)
		return nil
	})
	f.BoolVar(&c.run, "run", false, "run CMD [ARG]... (after --) under baton run, for a program that does not upgrade itself")
	f.StringVar(&c.readyMode, "ready", "notify", "with --run: notify (CMD sends READY=1) or exec (ready once it has kept running --ready-timeout, 2s unless given)")
	f.StringVar(&c.baton, "baton", units.DefaultBaton, "the installed baton `PATH` that ExecReload= runs")
	return c
}

func (c *unitsCmd) Run(_ context.Context, args []string) error {
	if err := c.flags.parse(args); err != nil {
		return err
	}
	if !c.run {
		if err := c.flags.noArgs(); err != nil {
			return err
		}
	}
	spec, err := c.spec()
	if err != nil {
		return err
	}
	files, err := units.Generate(spec)
	if err != nil {
		return c.specError(err)
	}
	if err := c.write(files); err != nil {
		return err
	}
	fmt.Fprint(c.io.Stderr, sandboxNotes(spec))
	// The units are right as asked; the machine may not be ready for them.
	fmt.Fprint(c.io.Stderr, batonWarning(c.baton))
	return nil
}

func (c *unitsCmd) write(files []units.File) error {
	if c.out == "" {
		return c.print(files)
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	if err := units.Write(c.out, files); err != nil {
		return err
	}
	for _, f := range files {
		fmt.Fprintln(c.io.Stdout, filepath.Join(c.out, f.Name))
	}
	return nil
}

// batonWarning is the warning `baton units` prints when path, the baton
// that ExecReload= and ExecStop= run, is not an executable file on this
// machine, with the fix; "" when it is.
func batonWarning(path string) string {
	why := ""
	switch fi, err := os.Stat(path); {
	case errors.Is(err, fs.ErrNotExist):
		why = "it does not exist"
	case err != nil:
		why = err.Error()
	case fi.IsDir():
		why = "it is a directory"
	case !fi.Mode().IsRegular():
		why = "it is not a regular file"
	case fi.Mode().Perm()&0o111 == 0:
		why = fmt.Sprintf("it is not executable (mode %v)", fi.Mode().Perm())
	case fi.Mode().Perm()&0o001 == 0:
		// ExecReload= and ExecStop= run as the service's user, a dynamic
		// one by default: not the file's owner or group.
		why = fmt.Sprintf("only its owner or group may execute it (mode %v), not the service's user", fi.Mode().Perm())
	default:
		return ""
	}
	install := fmt.Sprintf("GOBIN=%s go install %s@latest", filepath.Dir(path), batonPkg)
	if filepath.Base(path) != "baton" {
		install = fmt.Sprintf("go install %s@latest and copy the baton it writes to %s", batonPkg, path)
	}
	return fmt.Sprintf("baton units: warning: ExecReload= and ExecStop= run %s, which is not executable here: %s;\n"+
		"  systemctl reload and stop would fail (status=203/EXEC). Install it with\n"+
		"  %s, or pass --baton PATH.\n", path, why, install)
}

// batonPkg is the import path of the baton command, for go install.
const batonPkg = "github.com/batonhq/baton/cmd/baton"

func (c *unitsCmd) spec() (units.Spec, error) {
	if c.name == "" {
		return units.Spec{}, usagef("units", "--name is required")
	}
	var words []string
	switch {
	case c.run && c.exec != "":
		return units.Spec{}, usagef("units", "--exec with --run: give the program after -- (baton units --run [FLAGS] -- CMD [ARG]...)")
	case c.run && c.flags.NArg() == 0:
		return units.Spec{}, usagef("units", "--run: no command: want baton units --run [FLAGS] -- CMD [ARG]...")
	case c.run:
		words = c.flags.Args()
	case c.exec == "":
		return units.Spec{}, usagef("units", "--exec is required (or --run -- CMD [ARG]...)")
	default:
		var err error
		if words, err = splitWords(c.exec); err != nil {
			return units.Spec{}, usagef("units", "--exec %q: %v", c.exec, err)
		}
	}
	spec := units.Spec{
		Name:           c.name,
		Description:    c.desc,
		Exec:           words,
		DrainTimeout:   c.drain,
		StopDelay:      c.stopDelay,
		WatchWindow:    c.watchWindow,
		ReadyTimeout:   c.ready,
		Watchdog:       c.watchdog,
		FDStoreMax:     c.fdstore,
		SystemdVersion: c.systemd,
		Baton:          c.baton,
		AllowNetwork:   c.allowNetwork,
		AllowIP:        c.allowIP,
		StateDirectory: c.stateDir,
		User:           c.user,
		Writable:       c.writable,
		Credentials:    c.credentials,
		Run:            c.run,
	}
	switch c.readyMode {
	case "notify":
	case "exec":
		if !c.run {
			return units.Spec{}, usagef("units", "--ready exec needs --run (baton run decides when CMD is ready)")
		}
		spec.ReadyExec = true
		explicit := false
		c.flags.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "ready-timeout" })
		if !explicit {
			spec.ReadyTimeout = execReadyTimeout // as baton run --ready exec
		}
	default:
		return units.Spec{}, usagef("units", "--ready=%q: want notify or exec", c.readyMode)
	}
	for _, l := range c.listen {
		ls, err := parseListen(l)
		if err != nil {
			return units.Spec{}, &usageError{cmd: "units", err: err}
		}
		if ls.addr == nil {
			return units.Spec{}, &usageError{cmd: "units", err: errListenNoURL(l, "each socket gets a socket unit that binds it")}
		}
		_, url, _ := strings.Cut(l, "=")
		spec.Sockets = append(spec.Sockets, units.Socket{Name: ls.name, URL: url})
	}
	// Zero means "the default" in a Spec, but on the command line the
	// defaults are already in the flags: a zero given there is a mistake.
	if c.drain == 0 {
		return units.Spec{}, usagef("units", "--drain 0s: want a positive duration")
	}
	if c.ready == 0 {
		return units.Spec{}, usagef("units", "--ready-timeout 0s: want a positive duration")
	}
	return spec, nil
}

// specError names the flag behind a bad Spec field.
func (c *unitsCmd) specError(err error) error {
	var se *units.SpecError
	if !errors.As(err, &se) {
		return err
	}
	field, _, _ := strings.Cut(se.Field, ".")
	flagName := map[string]string{
		"Name": "--name", "Description": "--description", "Baton": "--baton",
		"DrainTimeout": "--drain", "StopDelay": "--stop-delay", "WatchWindow": "--watch-window", "ReadyTimeout": "--ready-timeout", "Watchdog": "--watchdog",
		"SystemdVersion": "--systemd-version", "FDStoreMax": "--fdstore", "User": "--user",
		"AllowIP": "--allow-ip",
	}[field]
	switch {
	case strings.HasPrefix(field, "Exec") && c.run:
		flagName = "--run CMD"
	case strings.HasPrefix(field, "Exec"):
		flagName = "--exec"
	case strings.HasPrefix(field, "Writable["):
		flagName = "--writable"
	case strings.HasPrefix(field, "Credentials["):
		flagName = "--credential"
	case strings.HasPrefix(field, "Sockets["):
		if i, perr := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(field, "Sockets["), "]")); perr == nil && i < len(c.listen) {
			flagName = fmt.Sprintf("--listen %q", c.listen[i])
		}
	case strings.HasPrefix(field, "AllowIP["):
		flagName = "--allow-ip"
	}
	if flagName == "" {
		return &usageError{cmd: "units", err: err}
	}
	if strings.HasPrefix(field, "Sockets[") {
		// In the words of baton run's checks (parseListen).
		what := "socket name"
		if strings.HasSuffix(se.Field, ".URL") {
			what = "socket address"
		}
		return &usageError{cmd: "units", err: fmt.Errorf("%s: %s %q: %s", flagName, what, se.Value, se.Reason)}
	}
	return &usageError{cmd: "units", err: fmt.Errorf("%s: %w", flagName, err)}
}

func (c *unitsCmd) print(files []units.File) error {
	var b strings.Builder
	for i, f := range files {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("# " + f.Name + "\n")
		b.Write(f.Bytes())
	}
	_, err := fmt.Fprint(c.io.Stdout, b.String())
	return err
}

// splitWords splits s into words the way a POSIX shell does, for quotes
// and backslashes only: 'single' keeps everything, "double" lets \ escape
// " \ $ and `, and a backslash outside quotes escapes any character.
func splitWords(s string) ([]string, error) {
	var (
		words   []string
		cur     strings.Builder
		inWord  bool
		r       = []rune(s)
		special = `"\$` + "`"
	)
	for i := 0; i < len(r); i++ {
		switch ch := r[i]; ch {
		case ' ', '\t', '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case '\\':
			if i+1 == len(r) {
				return nil, errors.New("trailing backslash")
			}
			i++
			cur.WriteRune(r[i])
			inWord = true
		case '\'':
			j := i + 1
			for j < len(r) && r[j] != '\'' {
				j++
			}
			if j == len(r) {
				return nil, errors.New("unterminated ' quote")
			}
			cur.WriteString(string(r[i+1 : j]))
			i, inWord = j, true
		case '"':
			i++
			for ; i < len(r) && r[i] != '"'; i++ {
				if r[i] == '\\' && i+1 < len(r) && strings.ContainsRune(special, r[i+1]) {
					i++
				}
				cur.WriteRune(r[i])
			}
			if i == len(r) {
				return nil, errors.New(`unterminated " quote`)
			}
			inWord = true
		default:
			cur.WriteRune(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// sandboxNotes is what baton units prints on stderr after the units: in
// three lines, what the service's sandbox denies (network, files, user)
// and the flags that relax each.
func sandboxNotes(s units.Spec) string {
	var network, files, user string
	switch {
	case s.AllowNetwork && len(s.AllowIP) > 0:
		network = fmt.Sprintf("connections of its own to %s only (IPAddressAllow=)", strings.Join(s.AllowIP, " "))
	case s.AllowNetwork:
		network = "connections of its own allowed (--allow-network); --allow-ip ADDR limits them"
	case len(s.Sockets) == 0:
		network = "connections of its own beyond localhost denied (IPAddressAllow=localhost); relax: --allow-network [--allow-ip ADDR]"
	default:
		network = "no connection of its own, not even to localhost (PrivateNetwork=yes: a database on 127.0.0.1 fails); relax: --allow-network [--allow-ip localhost]"
	}
	var rw []string
	if s.StateDirectory {
		rw = append(rw, "/var/lib/"+s.Name)
	}
	rw = append(rw, s.Writable...)
	if len(rw) > 0 {
		files = fmt.Sprintf("read-only but %s and a private /tmp (ProtectSystem=strict); relax: --writable PATH", strings.Join(rw, ", "))
	} else {
		files = "read-only but a private /tmp, /home hidden (ProtectSystem=strict, ProtectHome=yes); relax: --state-dir, --writable PATH"
	}
	switch {
	case s.User != "":
		user = fmt.Sprintf("runs as %s, no capabilities (CapabilityBoundingSet=)", s.User)
	case len(s.Credentials) > 0:
		user = "a dynamic user: root-only files unreadable but the credentials in $CREDENTIALS_DIRECTORY (DynamicUser=yes); relax: --credential ID:PATH, --user USER"
	default:
		user = "a dynamic user: root-only files (a 0600 config) unreadable (DynamicUser=yes); relax: --credential ID:PATH, --user USER"
	}
	return "baton units: sandbox: network: " + network + "\n" +
		"baton units: sandbox: files: " + files + "\n" +
		"baton units: sandbox: user: " + user + "\n"
}
