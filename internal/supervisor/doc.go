// Package supervisor is the engine of `baton run`: it holds a service's
// sockets and runs a program (CMD) that serves them, and replaces that
// program with a fresh copy without closing the sockets, so no client sees a
// refused connection.
//
// The model: at any moment there is one serving CMD (or a pool of Workers
// serving CMDs) and possibly some draining ones. The sockets belong to the
// supervisor; every CMD gets them at fd 3.. with LISTEN_FDS, LISTEN_FDNAMES,
// LISTEN_PID set to its own pid and LISTEN_PIDFDID to its own pidfd inode
// (where the kernel has pidfs), exactly as systemd 258+ would start it, plus
// a NOTIFY_SOCKET of the supervisor's own. An upgrade starts a new CMD, waits
// for its READY=1, makes it the serving one, then sends SIGTERM to the old
// one, which has Drain to finish before SIGKILL. A new CMD that exits, is
// not ready in time, or cannot be found is killed and reported (a
// *StartError); the old one keeps serving. One upgrade runs at a time.
//
// With a WatchWindow the old CMD is not signalled at the cut-over: it stays
// on standby, still accepting on the shared sockets, until the window has
// passed, and a new CMD that exits within it is rolled back (the old one
// serves on alone, ErrRolledBack for UpgradeWith with WaitWindow, counted in
// Stats.RolledBack, outcome "rolled-back" in History, STATUS= to the
// manager). A new upgrade is refused while the window runs.
//
// A pool (Workers above 1) is upgraded rolling: at most MaxSurge new workers
// start at a time, each takes a worker's place once ready (whose old worker
// then gets SIGTERM), and no more than Workers+MaxSurge CMDs run at once,
// draining ones included. A new worker that fails stops the roll-out and the
// roll-out's other new workers are stopped too, so that one version serves.
// A worker that exits outside an upgrade is started again after
// RestartDelay, doubling up to MaxRestartDelay. Scale resizes the pool.
//
// Every CMD's life is one state (state.go), changed only by one transition
// function that refuses what this table does not list:
//
//	starting  -> serving   ready (a restart, a resize, an upgrade's cut-over)
//	starting  -> draining  failed or abandoned start (SIGTERM, SIGKILL after Drain)
//	serving   -> standby   replaced while a watch window runs
//	serving   -> draining  replaced, rolled back (a pool's new ones), scaled down, stopped
//	standby   -> serving   the new CMD exited within the window: rollback
//	standby   -> draining  the window passed, or a stop
//	any       -> exited    reaped (a pool restarts a serving worker that exits)
//
// Under systemd the supervisor stays the main process. It tells the manager
// READY=1 once the first CMD is ready, RELOADING=1 (with MONOTONIC_USEC) and
// READY=1 around every upgrade, STOPPING=1 at the end, and forwards the
// serving CMD's STATUS= and WATCHDOG= messages; it never sends MAINPID=.
//
//	[Service]
//	Type=notify
//	NotifyAccess=main
//	ExecStart=/usr/local/bin/baton run --listen http=tcp://:8080 -- /usr/local/bin/myserver
//	ExecReload=/usr/local/bin/baton reload --pid $MAINPID
//	KillMode=mixed
//
// NOTES
//   - LISTEN_PID must be the pid of the process that receives the sockets,
//     and Go cannot run code between fork and exec: CMD is started through
//     internal/spawn's trampoline (the supervisor's own executable, whose
//     init sets LISTEN_PID and LISTEN_PIDFDID and execs CMD in place; the
//     supervisor's own LISTEN_PIDFDID, from the systemd that started it,
//     never reaches CMD). A binary that embeds the
//     supervisor imports internal/spawn through it, which is all it needs.
//   - The sockets are put in blocking mode once, before the first CMD, as
//     systemd hands them over (a C server may rely on it); the mode belongs
//     to the open file description every CMD shares, so it is never touched
//     again while a CMD serves.
//   - Every CMD leads a process group of its own (its pgid is its pid, set
//     at fork, kept through the trampoline's exec). A terminal's Ctrl-C or
//     Ctrl-\ reaches the supervisor's group only, so CMD gets SIGINT or
//     SIGQUIT once, as the supervisor forwards it. Forwarded signals and
//     the SIGTERM of an upgrade go to CMD's pid alone: CMD decides what its
//     own children get, as under systemd's KillMode=mixed. The SIGKILL
//     after Drain goes to CMD's whole group, so children CMD started (and
//     did not move to groups of their own) die with it.
//   - In a terminal, CMD is thereby a background group: with `stty tostop`
//     its writes to the terminal stop it (SIGTTOU), and Ctrl-Z stops the
//     supervisor, not CMD. Its stdin is /dev/null.
//   - With ReapOrphans the supervisor waits for every child of the process
//     (PID 1 of a container, or a child subreaper): nothing else in the
//     process may wait for children then, os/exec included.
//   - Notify messages are accepted only from the pid of a CMD the
//     supervisor started (SO_PASSCRED); a wrapper script that forks instead
//     of exec'ing never becomes ready.
//   - The binary is looked up again at every start: a binary replaced by
//     rename takes effect at the next upgrade, and a missing one fails that
//     upgrade only.
//   - StopDelay is a lame duck: Stop with SIGTERM or SIGINT says STOPPING=1
//     and refuses upgrades at once, but signals the serving CMD only after
//     the delay (a second Stop signals at once). CMD is not told: it is
//     for load balancers that learn of the stop by other means (Kubernetes
//     removes the endpoint as it sends SIGTERM). Give CMD no delay of its
//     own: the SIGTERM of every upgrade would make it serve on.
//   - MaxDraining caps the replaced CMDs still draining: at an upgrade the
//     oldest above the cap are killed like a CMD past Drain, which cuts
//     their connections. The default, as in handoff, is 8 upgrades' worth
//     (8 × Workers CMDs): a CMD that sleeps through a lame-duck period
//     looks as busy as one with requests in flight, and a storm of more
//     than 8 upgrades within one drain kills it there; -1 lifts the cap.
//   - A pool's roll-out does not wait for replaced workers to drain:
//     MaxSurge bounds the workers serving or starting, not the draining
//     ones, which MaxDraining bounds.
//   - The file on disk is the only version the supervisor can start: after
//     a pool's failed roll-out the places whose old workers were already
//     replaced stay vacant (Stats.Workers is the wanted size, Children the
//     running ones) until the next upgrade or Scale; a restart after an
//     exit starts the file on disk too, whatever version it is.
//   - A watch window needs one CMD: New refuses it with Workers above 1.
//     In a pool the roll-out itself is the safeguard (each new worker
//     ready before an old one stops); rolling back a whole pool could
//     only keep MaxSurge old workers.
//   - In a pool, a forwarded signal goes to every worker; STATUS= and
//     WATCHDOG= are forwarded from the first worker only. The supervisor's
//     own STATUS= ("serving: N of M workers (pids ...)") is sent again
//     whenever the serving set changes: after a roll-out, a worker's exit
//     and its restart, a resize.
//   - With a Front (internal/front, `baton run --front`) the CMDs never
//     see the public sockets: each gets its generation's private socket,
//     the front routes requests to the serving CMDs only (the state
//     table's moves into and out of serving route and unroute; exited
//     releases), a new CMD must accept a probe connection to be ready,
//     and a replaced CMD's requests end before its SIGTERM (Quiesce, up
//     to Drain; then it has Drain again). A stop drains the front's
//     clients (Front.Shutdown, up to Drain) before the signal goes on.
//   - Stop during an upgrade abandons it with an error wrapping ErrStopping
//     (control code "stopping", `baton reload` exit 0). systemd signals the
//     whole cgroup on stop, so the new CMD may end before the supervisor's
//     own SIGTERM is handled: a new CMD that ends as a stopped one does
//     (SIGTERM, SIGINT, exit status 0) makes the upgrade wait up to 500ms
//     for Stop before it is reported as failed.
package supervisor
