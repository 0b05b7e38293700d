// Package units turns one Spec into the systemd units of a service that
// baton upgrades in place: a .service and one .socket per named socket,
// hardened by default, written with go-systemd's unit package.
//
// The model: systemd owns the sockets (one socket unit each, with
// FileDescriptorName= so the service finds them by name); the service's
// main process is the current generation; `systemctl reload` runs
// `baton reload --pid $MAINPID`, which asks that process to start its
// successor and waits until the successor serves, so a failed upgrade fails
// the reload. The old generation hands the main PID over itself
// (MAINPID=<successor> and READY=1, then BARRIER=1), which the manager
// accepts from the main process whatever NotifyAccess= says, so
// NotifyAccess=main is enough and nothing else may talk to the manager.
//
// For Spec{Name: "myapp", Exec: []string{"/usr/local/bin/myapp"},
// Sockets: []Socket{{Name: "http", URL: "tcp://127.0.0.1:8080"}}}
// Generate returns myapp-http.socket:
//
//	[Socket]
//	ListenStream=127.0.0.1:8080
//	FileDescriptorName=http
//	Service=myapp.service
//
// and myapp.service (the sandbox shortened here):
//
//	[Unit]
//	Requires=myapp-http.socket
//	After=myapp-http.socket
//
//	[Service]
//	Type=notify
//	NotifyAccess=main
//	ExecStart=/usr/local/bin/myapp
//	ExecReload=/usr/local/bin/baton reload --pid $MAINPID
//	ExecStop=/usr/local/bin/baton stop --pid $MAINPID
//	Sockets=myapp-http.socket
//	TimeoutStartSec=15s
//	TimeoutStopSec=35s
//	KillMode=control-group
//	DynamicUser=yes
//	ProtectSystem=strict
//	PrivateNetwork=yes
//	RestrictAddressFamilies=AF_UNIX
//	IPAddressDeny=any
//	SystemCallFilter=@system-service
//	CapabilityBoundingSet=
//	...
//
// systemd-analyze security rates the default service 0.2 (SAFE). Its
// switches relax it: AllowNetwork (with an optional AllowIP list) for
// connections of its own, StateDirectory and Writable for files it
// writes, Credentials (LoadCredential=) for root-only files it reads, User
// for an existing user. A service without sockets binds its own and may
// reach loopback only unless AllowNetwork is set.
//
// Spec.Run writes the units of a program that does not upgrade itself:
// ExecStart=/usr/local/bin/baton run --ready-timeout 10s --drain 30s --
// PROGRAM (with ReadyExec, --ready exec for a program that never sends
// READY=1), Type=notify, KillMode=mixed, no ExecStop= (baton stays the main
// process and systemd's child).
//
// Traps:
//   - Type=notify-reload (SystemdVersion >= 253) keeps ExecReload=: systemd
//     then follows the upgrade through RELOADING=1 ... READY=1 and fails
//     the reload when baton reload fails (observed on 254: "Reload failed"
//     and `systemctl reload` exits 1; notify-reload alone has no way to
//     fail a reload but a timeout). systemd sends ReloadSignal= to the main
//     process before it runs ExecReload=, so ReloadSignal=SIGWINCH, which
//     Go and C programs ignore by default: SIGHUP would start a second
//     upgrade. `kill -HUP $MAINPID` still upgrades, fire-and-forget.
//   - systemd 252 cannot parse Type=notify-reload: it warns and falls back
//     to Type=simple. Set SystemdVersion to the oldest systemd the units
//     will meet.
//   - KillMode=control-group: `systemctl stop` sends SIGTERM to every
//     generation, draining ones included, and SIGKILLs what is left after
//     TimeoutStopSec (stop delay + drain + TimeoutSlack). KillMode=mixed would SIGKILL a
//     draining generation as soon as the current one exits.
//   - ExecStop=baton stop --pid $MAINPID: after the first upgrade the
//     main process is not systemd's child, and systemd does not wait for
//     such a main process on stop: it sends SIGTERM and, when nothing else
//     in the unit is left to wait for, SIGKILL at once, cutting the drain
//     short (observed on 252 and 254). systemd waits for ExecStop= (up to
//     TimeoutStopSec=), and baton stop returns when the process has exited.
//   - TimeoutStartSec= also bounds ExecReload=: it is ReadyTimeout +
//     TimeoutSlack, so a reload is cut off only after the service itself
//     gave up on the new generation. With Spec.WatchWindow it adds the
//     window, and ExecReload= is `baton reload --wait-window`: `systemctl
//     reload` returns when the window has passed, and fails when the new
//     generation was rolled back within it.
//   - IPAddressDeny= filters the sockets the service creates. The sockets
//     of the socket units belong to them; filter those with IPAddress*= in
//     a drop-in for the socket unit.
//   - PrivateNetwork=yes is compatible with baton reload because its
//     control socket is an abstract unix socket in the service's network
//     namespace, and ExecReload= runs in that namespace. AF_UNIX must stay
//     in RestrictAddressFamilies= for it and for sd_notify.
//   - ExecReload= names Spec.Baton (DefaultBaton, /usr/local/bin/baton):
//     install baton there or set the path; the sandbox makes it read-only,
//     not invisible.
//   - The sandbox is made for a Go server: MemoryDenyWriteExecute=yes
//     breaks JIT runtimes (Java, Node.js), and the system call filter
//     answers EPERM to @privileged and @resources calls. Relax those with a
//     drop-in (systemctl edit NAME.service), not with a switch.
//   - FDStoreMax is refused with socket units: after a restart the store
//     would pass a second copy of every socket.
package units
