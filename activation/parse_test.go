package activation

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const self = 4242

// set builds an environ with all three variables present.
func set(pid, fds, names string) environ {
	return environ{pid: pid, fds: fds, names: names, hasPID: true, hasFDs: true, hasNames: true}
}

func TestParse(t *testing.T) {
	long := strings.Repeat("n", 255)
	tests := []struct {
		name      string
		env       environ
		wantN     int
		wantNames []string
	}{
		{"one named", set("4242", "1", "http"), 1, []string{"http"}},
		{"names absent", environ{pid: "4242", fds: "3", hasPID: true, hasFDs: true}, 3, nil},
		{"duplicate names", set("4242", "4", "admin:http:http:admin"), 4, []string{"admin", "http", "http", "admin"}},
		{"empty fields kept", set("4242", "3", ":x:"), 3, []string{"", "x", ""}},
		{"one empty field of two", set("4242", "2", ":"), 2, []string{"", ""}},
		{"empty value is one empty name", set("4242", "1", ""), 1, []string{""}},
		{"name of 255 bytes", set("4242", "1", long), 1, []string{long}},
		{"printable ASCII", set("4242", "1", "a b~!@#$%^&*()=.-_/\\'\"`{}[]|<>,?;"), 1, []string{"a b~!@#$%^&*()=.-_/\\'\"`{}[]|<>,?;"}},
		{"special names", set("4242", "3", "connection:stored:unknown"), 3, []string{"connection", "stored", "unknown"}},
		{"largest count", environ{pid: "4242", fds: "2147483644", hasPID: true, hasFDs: true}, MaxFDs, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, names, err := parse(tt.env, self, selfIDOf(77))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if n != tt.wantN {
				t.Errorf("n = %d, want %d", n, tt.wantN)
			}
			if diff := cmp.Diff(tt.wantNames, names); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
		})
	}
}

// badInputs are the malformed and not-activated inputs with the exact error
// each gives; the process tests replay them through Receive.
var badInputs = []struct {
	name    string
	env     environ
	wantVar string // the EnvError's Var; "" for ErrNotActivated
	want    string
}{
	{
		"LISTEN_PID missing",
		environ{fds: "1", names: "a", hasFDs: true, hasNames: true},
		"",
		`activation: not socket-activated: LISTEN_PID is not set`,
	},
	{
		"LISTEN_PID foreign", set("1", "1", "a"), "",
		`activation: not socket-activated: LISTEN_PID=1 is another process (this is 4242)`,
	},
	{
		"LISTEN_PID foreign, rest malformed", set("1", "abc", "a:b"), "",
		`activation: not socket-activated: LISTEN_PID=1 is another process (this is 4242)`,
	},
	{
		"LISTEN_FDS missing",
		environ{pid: "4242", hasPID: true},
		"",
		`activation: not socket-activated: LISTEN_PID=4242 but LISTEN_FDS is not set`,
	},
	{
		"LISTEN_PID empty", set("", "1", "a"), EnvPID,
		`activation: LISTEN_PID="": empty`,
	},
	{
		"LISTEN_PID unparsable", set("abc", "1", "a"), EnvPID,
		`activation: LISTEN_PID="abc": not a decimal number`,
	},
	{
		"LISTEN_PID with space", set(" 4242", "1", "a"), EnvPID,
		`activation: LISTEN_PID=" 4242": not a decimal number`,
	},
	{
		"LISTEN_PID plus sign", set("+4242", "1", "a"), EnvPID,
		`activation: LISTEN_PID="+4242": not a decimal number`,
	},
	{
		"LISTEN_PID leading zero", set("04242", "1", "a"), EnvPID,
		`activation: LISTEN_PID="04242": leading zero (octal to libsystemd, decimal to others)`,
	},
	{
		"LISTEN_PID hex", set("0x1092", "1", "a"), EnvPID,
		`activation: LISTEN_PID="0x1092": not a decimal number`,
	},
	{
		"LISTEN_PID zero", set("0", "1", "a"), EnvPID,
		`activation: LISTEN_PID="0": not a process id: below 1`,
	},
	{
		"LISTEN_PID negative", set("-4242", "1", "a"), EnvPID,
		`activation: LISTEN_PID="-4242": not a process id: below 1`,
	},
	{
		"LISTEN_PID huge", set("99999999999999999999", "1", "a"), EnvPID,
		`activation: LISTEN_PID="99999999999999999999": not a process id: above 2147483647`,
	},
	{
		"LISTEN_PID above int32", set("2147483648", "1", "a"), EnvPID,
		`activation: LISTEN_PID="2147483648": not a process id: above 2147483647`,
	},
	{
		"LISTEN_FDS letters", set("4242", "abc", "a"), EnvFDs,
		`activation: LISTEN_FDS="abc": not a decimal number`,
	},
	{
		"LISTEN_FDS empty", set("4242", "", "a"), EnvFDs,
		`activation: LISTEN_FDS="": empty`,
	},
	{
		"LISTEN_FDS minus alone", set("4242", "-", "a"), EnvFDs,
		`activation: LISTEN_FDS="-": not a decimal number`,
	},
	{
		"LISTEN_FDS plus sign", set("4242", "+1", "a"), EnvFDs,
		`activation: LISTEN_FDS="+1": not a decimal number`,
	},
	{
		"LISTEN_FDS trailing space", set("4242", "1 ", "a"), EnvFDs,
		`activation: LISTEN_FDS="1 ": not a decimal number`,
	},
	{
		"LISTEN_FDS hex", set("4242", "0x1", "a"), EnvFDs,
		`activation: LISTEN_FDS="0x1": not a decimal number`,
	},
	{
		"LISTEN_FDS leading zero", set("4242", "01", "a"), EnvFDs,
		`activation: LISTEN_FDS="01": leading zero (octal to libsystemd, decimal to others)`,
	},
	{
		"LISTEN_FDS octal", set("4242", "010", "a:b:c:d:e:f:g:h"), EnvFDs,
		`activation: LISTEN_FDS="010": leading zero (octal to libsystemd, decimal to others)`,
	},
	{
		"LISTEN_FDS double zero", set("4242", "00", "a"), EnvFDs,
		`activation: LISTEN_FDS="00": leading zero (octal to libsystemd, decimal to others)`,
	},
	{
		"LISTEN_FDS negative", set("4242", "-1", "a"), EnvFDs,
		`activation: LISTEN_FDS="-1": negative, need at least 1 fd`,
	},
	{
		"LISTEN_FDS very negative", set("4242", "-99999999999999999999", "a"), EnvFDs,
		`activation: LISTEN_FDS="-99999999999999999999": negative, need at least 1 fd`,
	},
	{
		"LISTEN_FDS zero", set("4242", "0", ""), EnvFDs,
		`activation: LISTEN_FDS="0": zero, need at least 1 fd`,
	},
	{
		"LISTEN_FDS above INT_MAX-3", set("4242", "2147483645", "a"), EnvFDs,
		`activation: LISTEN_FDS="2147483645": more than the 2147483644 fds possible`,
	},
	{
		"LISTEN_FDS huge", set("4242", "99999999999999999999", "a"), EnvFDs,
		`activation: LISTEN_FDS="99999999999999999999": more than the 2147483644 fds possible`,
	},
	{
		"LISTEN_FDNAMES too few", set("4242", "3", "a:b"), EnvNames,
		`activation: LISTEN_FDNAMES="a:b": 2 names for LISTEN_FDS=3`,
	},
	{
		"LISTEN_FDNAMES too many", set("4242", "1", "a:b"), EnvNames,
		`activation: LISTEN_FDNAMES="a:b": 2 names for LISTEN_FDS=1`,
	},
	{
		"LISTEN_FDNAMES empty for two", set("4242", "2", ""), EnvNames,
		`activation: LISTEN_FDNAMES="": 1 name for LISTEN_FDS=2`,
	},
	{
		"name over 255 bytes", set("4242", "2", "ok:"+strings.Repeat("x", 256)), EnvNames,
		`activation: LISTEN_FDNAMES="ok:` + strings.Repeat("x", 77) + `"...(259 bytes): name for fd 4 is 256 bytes, more than 255`,
	},
	{
		"name with newline", set("4242", "1", "a\nb"), EnvNames,
		`activation: LISTEN_FDNAMES="a\nb": name for fd 3 has control character '\n' at byte 1`,
	},
	{
		"name with tab", set("4242", "2", "x:\tb"), EnvNames,
		`activation: LISTEN_FDNAMES="x:\tb": name for fd 4 has control character '\t' at byte 0`,
	},
	{
		"name with DEL", set("4242", "1", "a\x7f"), EnvNames,
		`activation: LISTEN_FDNAMES="a\x7f": name for fd 3 has control character '\x7f' at byte 1`,
	},
	{
		"name with escape", set("4242", "1", "\x1b[31m"), EnvNames,
		`activation: LISTEN_FDNAMES="\x1b[31m": name for fd 3 has control character '\x1b' at byte 0`,
	},
	{
		"name not ASCII", set("4242", "1", "café"), EnvNames,
		`activation: LISTEN_FDNAMES="café": name for fd 3 has non-ASCII byte 0xc3 at byte 3`,
	},
}

func TestParseBadInput(t *testing.T) {
	for _, tt := range badInputs {
		t.Run(tt.name, func(t *testing.T) {
			n, names, err := parse(tt.env, self, selfIDOf(77))
			if err == nil {
				t.Fatalf("parse = %d, %q; want error %s", n, names, tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error\n got %s\nwant %s", got, tt.want)
			}
			checkErrKind(t, err, tt.wantVar)
		})
	}
}

// checkErrKind checks that err matches ErrNotActivated (wantVar "") or is
// an *EnvError for wantVar, and not both.
func checkErrKind(t *testing.T, err error, wantVar string) {
	t.Helper()
	var envErr *EnvError
	isEnv := errors.As(err, &envErr)
	if wantVar == "" {
		if !errors.Is(err, ErrNotActivated) || isEnv {
			t.Errorf("error %v: want ErrNotActivated only (EnvError: %v)", err, isEnv)
		}
		return
	}
	if errors.Is(err, ErrNotActivated) {
		t.Errorf("error %v matches ErrNotActivated", err)
	}
	if !isEnv {
		t.Fatalf("error %v (%T) is not an *EnvError", err, err)
	}
	if envErr.Var != wantVar {
		t.Errorf("EnvError.Var = %s, want %s", envErr.Var, wantVar)
	}
}

func FuzzParse(f *testing.F) {
	for _, tt := range badInputs {
		f.Add(tt.env.pid, tt.env.fds, tt.env.names, tt.env.hasPID, tt.env.hasFDs, tt.env.hasNames)
	}
	f.Add("4242", "4", "admin:http:http:admin", true, true, true)
	f.Add("4242", "2", "", true, true, false)
	f.Fuzz(func(t *testing.T, pid, fds, names string, hasPID, hasFDs, hasNames bool) {
		env := environ{pid: pid, fds: fds, names: names, hasPID: hasPID, hasFDs: hasFDs, hasNames: hasNames}
		n, got, err := parse(env, self, selfIDOf(77))
		if err != nil {
			if n != 0 || got != nil {
				t.Fatalf("error %v with a result %d %q", err, n, got)
			}
			var envErr *EnvError
			switch {
			case errors.Is(err, ErrNotActivated):
				if errors.As(err, &envErr) {
					t.Fatalf("both not activated and EnvError: %v", err)
				}
			case errors.As(err, &envErr):
				if !strings.HasPrefix(err.Error(), "activation: "+envErr.Var+"=") {
					t.Fatalf("error does not name its variable: %v", err)
				}
				if envErr.Value != map[string]string{EnvPID: pid, EnvFDs: fds, EnvNames: names}[envErr.Var] {
					t.Fatalf("EnvError.Value %q is not the variable's value", envErr.Value)
				}
			default:
				t.Fatalf("error of neither kind: %v", err)
			}
			return
		}
		if !hasPID || !hasFDs || pid == "" || fds == "" {
			t.Fatalf("accepted with a variable missing: %+v", env)
		}
		if n < 1 || n > MaxFDs {
			t.Fatalf("n = %d out of range", n)
		}
		if !hasNames {
			if got != nil {
				t.Fatalf("names %q without LISTEN_FDNAMES", got)
			}
			return
		}
		if len(got) != n || strings.Join(got, ":") != names {
			t.Fatalf("names %q do not split %q into %d", got, names, n)
		}
		for _, name := range got {
			if len(name) > MaxNameLen || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r >= 0x7f }) {
				t.Fatalf("invalid name %q accepted", name)
			}
		}
	})
}

func TestCheckName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"http", true},
		{"a.b-c_d", true},
		{strings.Repeat("x", 255), true},
		{"with space", true},
		{"", false},
		{"a:b", false},
		{"a\tb", false},
		{"a\nb", false},
		{"caf\u00e9", false},
		{"del\x7f", false},
		{strings.Repeat("x", 256), false},
	} {
		err := CheckName(tt.name)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrBadName)) {
			t.Errorf("CheckName(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

// selfIDOf is a selfID that knows this process's pidfd inode number: id.
func selfIDOf(id uint64) selfID { return func() (uint64, bool) { return id, true } }

// noPidfs is the selfID of a kernel without pidfs.
func noPidfs() (uint64, bool) { return 0, false }

// withPIDFDID is set(...) with LISTEN_PIDFDID=id too.
func withPIDFDID(env environ, id string) environ {
	env.pidfdID, env.hasPIDFDID = id, true
	return env
}

// pidfdidInputs are the LISTEN_PIDFDID cases, for a process whose pid is
// 4242 and whose pidfd inode number is 77.
var pidfdidInputs = []struct {
	name    string
	env     environ
	wantVar string // "" and want "": accepted; "" and want set: not activated
	want    string
}{
	{"PIDFDID own", withPIDFDID(set("4242", "1", "a"), "77"), "", ""},
	{
		"PIDFDID another process's", withPIDFDID(set("4242", "1", "a"), "78"), "",
		`activation: not socket-activated: LISTEN_PIDFDID=78 is another process's pidfd (this process's is 77)`,
	},
	{
		"PIDFDID with LISTEN_PID foreign", withPIDFDID(set("1", "1", "a"), "77"), "",
		`activation: not socket-activated: LISTEN_PID=1 is another process (this is 4242)`,
	},
	{
		// LISTEN_PID decides first: a bad id for another process is
		// not this process's business.
		"PIDFDID malformed, LISTEN_PID foreign", withPIDFDID(set("1", "1", "a"), "x"), "",
		`activation: not socket-activated: LISTEN_PID=1 is another process (this is 4242)`,
	},
	{
		// The id decides before LISTEN_FDS is read.
		"PIDFDID another process's, LISTEN_FDS malformed", withPIDFDID(set("4242", "x", "a"), "78"), "",
		`activation: not socket-activated: LISTEN_PIDFDID=78 is another process's pidfd (this process's is 77)`,
	},
	{"PIDFDID empty", withPIDFDID(set("4242", "1", "a"), ""), EnvPIDFDID, `activation: LISTEN_PIDFDID="": empty`},
	{"PIDFDID letters", withPIDFDID(set("4242", "1", "a"), "abc"), EnvPIDFDID, `activation: LISTEN_PIDFDID="abc": not a decimal number`},
	{"PIDFDID plus sign", withPIDFDID(set("4242", "1", "a"), "+77"), EnvPIDFDID, `activation: LISTEN_PIDFDID="+77": not a decimal number`},
	{"PIDFDID with space", withPIDFDID(set("4242", "1", "a"), " 77"), EnvPIDFDID, `activation: LISTEN_PIDFDID=" 77": not a decimal number`},
	{
		"PIDFDID leading zero", withPIDFDID(set("4242", "1", "a"), "077"), EnvPIDFDID,
		`activation: LISTEN_PIDFDID="077": leading zero (octal to libsystemd, decimal to others)`,
	},
	{"PIDFDID negative", withPIDFDID(set("4242", "1", "a"), "-77"), EnvPIDFDID, `activation: LISTEN_PIDFDID="-77": negative, not an inode number`},
	{"PIDFDID zero", withPIDFDID(set("4242", "1", "a"), "0"), EnvPIDFDID, `activation: LISTEN_PIDFDID="0": zero, not an inode number`},
	{
		"PIDFDID above 64 bits", withPIDFDID(set("4242", "1", "a"), "18446744073709551616"), EnvPIDFDID,
		`activation: LISTEN_PIDFDID="18446744073709551616": above 18446744073709551615, not an inode number`,
	},
}

func TestParsePIDFDID(t *testing.T) {
	for _, tt := range pidfdidInputs {
		t.Run(tt.name, func(t *testing.T) {
			n, _, err := parse(tt.env, self, selfIDOf(77))
			switch {
			case tt.want == "":
				if err != nil || n != 1 {
					t.Fatalf("parse: %d, %v; want 1 fd", n, err)
				}
				return
			case err == nil:
				t.Fatalf("parse: %d fds, want %s", n, tt.want)
			case err.Error() != tt.want:
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
			var envErr *EnvError
			if tt.wantVar == "" {
				if !errors.Is(err, ErrNotActivated) || errors.As(err, &envErr) {
					t.Errorf("%v: want not activated", err)
				}
			} else if !errors.As(err, &envErr) || envErr.Var != tt.wantVar || envErr.Value != tt.env.pidfdID {
				t.Errorf("%v: want an EnvError for %s", err, tt.wantVar)
			}
		})
	}
}

// TestParsePIDFDIDWithoutPidfs: a kernel that cannot name this process by a
// pidfd inode (before Linux 6.9) accepts any well-formed LISTEN_PIDFDID
// and still refuses a malformed one, as libsystemd does.
func TestParsePIDFDIDWithoutPidfs(t *testing.T) {
	if n, _, err := parse(withPIDFDID(set("4242", "1", "a"), "78"), self, noPidfs); err != nil || n != 1 {
		t.Errorf("another id without pidfs: %d, %v; want the fd", n, err)
	}
	var envErr *EnvError
	if _, _, err := parse(withPIDFDID(set("4242", "1", "a"), "x"), self, noPidfs); !errors.As(err, &envErr) {
		t.Errorf("malformed id without pidfs: %v; want an EnvError", err)
	}
	called := false
	id := func() (uint64, bool) { called = true; return 77, true }
	if _, _, _ = parse(set("4242", "1", "a"), self, id); called {
		t.Error("own id looked up without LISTEN_PIDFDID")
	}
	if _, _, _ = parse(withPIDFDID(set("1", "1", "a"), "77"), self, id); called {
		t.Error("own id looked up for another pid")
	}
}
