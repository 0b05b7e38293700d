// Package handoff upgrades a running server in place with zero downtime.
//
// At any moment a service has one current generation (the process the
// manager knows as its main PID) and possibly some draining ones. A
// generation gets its sockets from the manager (LISTEN_FDS), from its
// predecessor (the same variables, set exactly as systemd sets them), or
// binds them itself when started by hand. An upgrade (SIGHUP, Upgrade, or
// `baton reload` through the control socket) starts the executable on disk
// with the same arguments and working directory; when the successor is
// ready, the current generation pauses accepting and the successor serves at
// once; then the main PID moves to it (MAINPID=, READY=1, BARRIER=1) and the
// old generation drains under a deadline and exits. If the successor fails
// it is killed and the current generation resumes (or keeps) serving.
//
//	up, err := handoff.New(handoff.Config{})
//	defer up.Close()
//	ln, err := up.Listen("http", "tcp", "127.0.0.1:8080")
//	err = up.Run(handoff.HTTP(&http.Server{Handler: h}, ln)) // Serve, Ready, Wait, Close
//
// or, for one http.Server, in one line (the socket named "http", srv.Addr
// when started by hand):
//
//	err := handoff.ListenAndServe(srv, handoff.Config{})
//
// # The upgrade, step by step
//
//  1. The current generation sends RELOADING=1 and MONOTONIC_USEC= (the
//     unit shows "reloading"; on 252 `systemctl reload` waits for READY=1).
//  2. It starts the executable as this process was invoked (argv[0],
//     resolved at start: a symbolic link switched to a new release, or a
//     file replaced by rename, takes effect), same arguments and working
//     directory, with its named sockets at fds 3.. and LISTEN_FDS,
//     LISTEN_FDNAMES and LISTEN_PID equal to the successor's pid before
//     its main runs. (internal/spawn, self-fix mode: an init function in
//     the successor, which imports this package, sets LISTEN_PID; the
//     alternative, a re-exec trampoline, costs about 2.3 ms more and
//     doubles the start-up floor.) One more fd follows the sockets: the
//     hand-over channel, a private SOCK_SEQPACKET socketpair
//     (BATON_HANDOFF_FD). The successor does not see NOTIFY_SOCKET: it is
//     held back in BATON_HANDOFF_NOTIFY until the successor is main, so
//     nothing in it talks to the manager too early. BATON_HANDOFF_DRAINING
//     lists the generations still draining, this one last (see "Draining
//     generations").
//  3. The successor initialises and calls Ready, which starts its servers
//     on its listeners paused, writes READY on the channel, resumes them
//     and waits: it accepts from READY on (early accept), and a successor
//     that fails before READY never accepted a connection.
//  4. Within ReadyTimeout, the current generation checks the successor is
//     still alive, pauses accepting (every listener Listen returned: an
//     Accept waits, connections stay in the shared socket's backlog,
//     which the successor drains; nothing is closed; between READY and
//     this pause both generations accept, both ready), turns its HTTP
//     servers' lame duck on (responses say "Connection: close", so that
//     keep-alive clients start moving) and writes SERVE on the channel:
//     the successor serves on probation. Then it sends
//     MAINPID=<successor> and READY=1 in one datagram, waits for BARRIER=1, and writes MAIN. From
//     then on it says nothing to the manager (docs/systemd-notes.md, rule 2): it
//     closes Done and drains; the successor restores NOTIFY_SOCKET, takes
//     the watchdog (WATCHDOG_PID=self), writes the PID file and sends
//     STATUS=. (Its control socket was opened before READY, so the pid the
//     predecessor reports can be reloaded at once.) A successor that dies
//     between READY and MAIN is rolled back: the current generation
//     resumes accepting and keeps the main PID; what the successor had
//     accepted is lost with it, as with any crash.
//  5. On any failure (cannot start, missing binary, exits early, not ready
//     in time, dies between ready and hand-over, speaks another version of
//     the hand-over protocol (BATON_HANDOFF_PROTO; both versions are
//     named), stop requested) the
//     successor gets ABORT, is killed and reaped, the manager gets READY=1
//     with STATUS=upgrade failed: <reason>, and Upgrade returns an
//     *UpgradeError (`baton reload` prints it and exits non-zero). An
//     upgrade abandoned because this generation stops (SIGTERM, Stop:
//     `systemctl stop` during `systemctl reload`) wraps ErrStopping, the
//     control reply "stopping": `baton reload` exits 0 and the unit ends
//     inactive, not failed.
//
// At most one upgrade runs at a time; another request gets an error
// wrapping ErrInProgress. Once handed over, a generation refuses upgrades
// (ErrHandedOver): the new main accepts them, also while older
// generations still drain.
//
// # HTTP: what the drain keeps, TLS, HTTP/2, streams
//
// HTTP(srv, ln) drains an http.Server with package drain (which servers
// without handoff use on their own): requests in
// flight finish and answer "Connection: close", idle keep-alive
// connections are closed after IdleGrace, connections that have not sent
// their first request yet (a distant client, a TLS handshake in progress)
// are kept until they do (NewConnGrace, 5 s, or srv.ReadHeaderTimeout),
// HTTP/2 connections get GOAWAY and close when their streams are done.
// With many connections open (64 and more) these closes are spread over a
// window of 100 µs per connection, at most 1 s (HTTPServer.SpreadWindow),
// so that the clients reconnect, and handshake, with the successor at a
// bounded rate rather than all in the same instant.
// For TLS set srv.TLSConfig and pass the plain listener: HTTP serves it as
// srv.ServeTLS would, HTTP/2 and HTTP/1.1 by ALPN:
//
//	cert, err := tls.LoadX509KeyPair("cert.pem", "key.pem")
//	ln, err := up.Listen("https", "tcp", ":443")
//	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
//		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
//	up.Serve(handoff.HTTP(srv, ln)) // not tls.NewListener(ln, ...): the drain must see the handshake
//
// Long-lived responses end before the deadline: a Server-Sent Events
// handler selects on Draining(r.Context()) and returns, so the stream ends
// with its chunked end of body and the client reconnects (to the
// successor); a handler that only watches r.Context() has it cancelled at
// Config.StreamGrace (three quarters of DrainTimeout). A WebSocket
// registers with Hijacked(r.Context(), goingAway), whose goingAway sends
// the 1001 close frame when the drain starts; the process does not exit
// while such connections are open, up to DrainTimeout.
//
//	c, err := websocket.Accept(w, r, nil)
//	done := handoff.Hijacked(r.Context(), func() { c.Close(websocket.StatusGoingAway, "restarting") })
//	defer done()
//
// # Unit file
//
//	[Socket]
//	ListenStream=127.0.0.1:8080
//	FileDescriptorName=http
//
//	[Service]
//	Type=notify
//	NotifyAccess=main
//	ExecStart=/usr/local/bin/myserver
//	ExecReload=/usr/local/bin/baton reload --pid $MAINPID
//	ExecStop=/usr/local/bin/baton stop --pid $MAINPID
//	TimeoutStopSec=35s
//	Restart=on-failure
//
// TimeoutStopSec= must cover Config.StopDelay plus Config.DrainTimeout (and
// some slack: `baton units --drain D --stop-delay D` writes their sum plus
// 5 s), or systemd kills the generation before it has drained.
//
// Keep KillMode=control-group (the default): on stop every generation gets
// SIGTERM; the main one says STOPPING=1 and drains, draining ones go on
// draining, a half-started successor declines the hand-over and exits.
// (KillMode=mixed would SIGKILL draining generations as soon as the main
// process exits.)
//
// ExecStop= matters: after the first upgrade the main process is not
// systemd's child, and systemd does not wait for such a main process on
// stop (it follows SIGTERM with SIGKILL when nothing else in the unit is
// left); it waits for ExecStop=, and `baton stop` returns when the process
// has drained and exited. On systemd 253+ Type=notify-reload works too
// (package units keeps ExecReload= there, with ReloadSignal=SIGWINCH, so
// that a failed upgrade fails the reload).
// `baton reload` is synchronous and reports failure; `kill -HUP $MAINPID`
// is fire-and-forget.
//
// # Stopping: the stop delay
//
// A load balancer (or Kubernetes, whose endpoint removal races the
// SIGTERM) keeps sending new connections for a while after a stop began.
// With Config.StopDelay the main generation, on SIGTERM, SIGINT or Stop,
// closes Stopping and says STOPPING=1 at once, but goes on serving (and
// accepting) for StopDelay; only then is Done closed and the drain
// started. A health check answers 503 once Stopping is closed:
//
//	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
//		select {
//		case <-up.Stopping():
//			http.Error(w, "stopping", http.StatusServiceUnavailable)
//		default:
//			io.WriteString(w, "ok\n")
//		}
//	})
//
// During the delay upgrades are refused (ErrStopping, `baton reload`
// exits 0), and a second SIGTERM or SIGINT (or Stop, or Close) ends the
// delay at once: Ctrl-C twice in a terminal does not wait. A hand-over is
// not a stop: the generation that hands over drains at once, and its
// Stopping stays open.
//
// # Watch window
//
// A new version that becomes ready and dies a second later would be an
// outage: the old generation has drained and exited. With
// Config.WatchWindow the old generation, at the cut-over, pauses as
// without it (no drain, no RegisterOnShutdown hook; its HTTP servers turn
// the drain's lame duck on: responses say "Connection: close", idle
// connections close, so that keep-alive clients move to the successor)
// and stays paused, holding its sockets and the main PID, for the window
// (a rollback turns the lame duck off):
//
//  1. The successor says READY probation (it knows the window:
//     BATON_HANDOFF_WATCH). The old generation writes SERVE instead of
//     MAIN and tells the manager READY=1 (the reload job ends) with
//     STATUS=serving, generation N+1, pid P, watched until T; generation N
//     (pid Q) holds the main PID, paused. The successor starts its
//     servers and says nothing to the manager: its NOTIFY_SOCKET stays
//     held back, the old generation keeps the watchdog, the PID file and
//     the fd store. Upgrade, and `baton reload`, return now, with the
//     successor's pid (`baton reload --wait-window` waits for the window's
//     outcome, UpgradeWatched in Go). Another upgrade is refused until the
//     window ends (ErrInProgress, naming it), on both generations.
//  2. When the successor ends within the window (it exits, crashes, is
//     killed, or is stopped alone and says STOPPING), the old generation
//     rolls back at once: it resumes accepting (the same servers: no
//     wrapper, no rebuild), so connections that waited in the shared
//     socket's backlog are answered and none is refused; only requests in
//     flight on connections the dead process held are lost, as with any
//     crash. It logs "rolled back" (Warn), sends STATUS=serving,
//     generation N, pid Q; rolled back generation N+1 (pid P): <reason>,
//     records the upgrade as "rolled back" in its history (`baton
//     status`), and Wait goes on as before the upgrade.
//  3. When the window has passed, the old generation checks through its
//     pidfd that the successor is alive, sends MAINPID=<successor> with
//     READY=1, waits for BARRIER=1 and writes MAIN; the successor then
//     becomes main as after an upgrade without a window (NOTIFY_SOCKET,
//     watchdog, PID file, STATUS=). The old generation drains (once, its
//     hooks run then) and exits; Done is closed then, not at the cut-over.
//
// Why MAINPID never names a dead process: systemd acts on the death of
// the main process (docs/systemd-notes.md: the unit goes down, the control group is
// killed, Restart= starts the same broken binary), so the main PID moves
// only when the window has passed. Until then the manager's main process
// is the old generation, alive throughout; the successor is a process of
// the unit that the manager does not watch, and its death changes nothing
// for the unit. At the window's end the successor is this process's
// unreaped child: if it died just before MAINPID= is read, it is a
// zombie, which systemd refuses as a main PID ("does not exist or is a
// zombie"), and the old generation, still main, rolls back. A successor
// that dies after the manager accepted it is the main process dying, as
// without a window. Under NotifyAccess=main nothing the successor could
// send reaches the manager before it is main; the old one speaks for the
// unit until then, and says nothing after (docs/systemd-notes.md, rule 2).
//
// The old generation killed in the window (SIGKILL, a crash) is the main
// process dying: the successor sees its channel close and claims the main
// PID (MAINPID=<self>, READY=1), as in "Predecessor killed mid-upgrade"
// below: without a manager it serves on; under systemd with
// NotifyAccess=main the unit restarts on its sockets.
//
// A stop during the window (SIGTERM to the unit) stops both: the old
// generation, main, says STOPPING=1 and tells the successor ABORT, which
// drains and exits. TimeoutStopSec= need not cover the window. A
// successor of a release without watch windows says READY alone and is
// handed the main PID at once (logged).
//
// # Lifecycle
//
// A generation is in one phase at a time (generation.go); every change
// goes through one transition function that refuses a move this table does
// not have (an error to its caller, logged, counted) and runs the move's
// effects: into awaiting main the servers start on listeners held until
// READY is written; into probation or serving the others start; into watching the
// listeners pause; from watching into serving they resume; into handed
// over or stopped Done is closed and the drain starts, there and nowhere
// else (Wait only waits for it):
//
//	phase          main  accepts  goes to            when
//	starting       no    no       awaiting main      a successor's Ready writes READY
//	                              serving            generation 1's Ready
//	                              stopped            Stop before Ready (a successor declines)
//	awaiting main  no    yes      serving            MAIN from an older release, or the predecessor died (claim)
//	                              probation          SERVE (the predecessor paused)
//	                              stopped            Stop (the answer is awaited: STOPPING=1 on MAIN)
//	probation      no    yes      serving            MAIN (at once, or after the window), or the predecessor died
//	                              stopped            Stop (says STOPPING to the predecessor), ABORT
//	serving        yes   yes      upgrading          Upgrade
//	                              stopping           Stop (STOPPING=1, then StopDelay)
//	upgrading      yes   yes      serving            the upgrade failed (READY=1, STATUS=)
//	                              watching           the successor is ready: pause, SERVE
//	                              handed over        MAINPID=, BARRIER=1, MAIN to an older release
//	                              stopping           Stop: the upgrade is cancelled and awaited
//	watching       yes   no       serving            the successor ended before MAIN: rollback (resume)
//	                              handed over        MAINPID=, BARRIER=1, MAIN (at once, or when the window passed)
//	                              stopped            Stop (STOPPING=1, ABORT to the successor)
//	stopping       yes   yes      stopped            after StopDelay (or a second Stop)
//	                              handed over        an upgrade that was in flight completed
//	handed over    no    no       -                  drains, exits
//	stopped        no    no       -                  drains, exits
//
// Done is closed on entering handed over or stopped; Stopping on the
// first Stop, in any phase.
//
// # Draining generations
//
// Every generation that handed over drains until its last connection ends
// or DrainTimeout passes; a storm of upgrades with long-lived connections
// would pile them up. Config.MaxDraining caps them (DefaultMaxDraining;
// negative: no cap). The current generation knows the ones still draining
// (its predecessor and the older ones: each successor gets the list in
// BATON_HANDOFF_DRAINING as GEN:PID:START entries, START the start time
// from /proc/PID/stat field 22, and checks it strictly). When an upgrade
// starts, entries whose process is gone, or whose pid now belongs to a
// process with another start time, are dropped; when the live ones plus
// this generation would be more than MaxDraining, the oldest are killed
// with SIGKILL, through a pidfd opened before the start time is compared
// once more, so that no other process is ever signalled. Each is logged at
// level Warn ("force-closed draining generation G (pid P): MaxDraining=N")
// and reported to the manager, with RELOADING=1 as "STATUS=upgrading to
// generation N; force-closed ..." and in the successor's first STATUS=
// line ("STATUS=serving, generation N, pid P; force-closed ..."). Their
// remaining connections are cut: pick a cap above the number of upgrades
// a long connection should survive.
//
// # Without a socket unit: the fd store
//
// A service that binds its own sockets keeps them across `systemctl
// restart` and crashes through systemd's fd store: the main generation
// sends every socket and file it opened itself (not the inherited ones)
// once, with FDSTORE=1 and FDNAME=<name>, before READY=1. systemd keeps
// them while the unit lives and passes them to the next process it starts
// as LISTEN_FDS, where Listen finds them by name; meanwhile connections
// wait in the backlog instead of being refused. `systemctl stop` empties
// the store. It takes FileDescriptorStoreMax= in the unit (`baton units
// --fdstore N`, for a unit without --listen); Config.NoFDStore turns it off.
//
//	[Service]
//	Type=notify
//	ExecStart=/usr/local/bin/myserver
//	ExecReload=/usr/local/bin/baton reload --pid $MAINPID
//	ExecStop=/usr/local/bin/baton stop --pid $MAINPID
//	FileDescriptorStoreMax=8
//	Restart=on-failure
//
// # Status
//
// Upgrader.Status (and `baton status`, through the control socket) tells
// what a generation knows: its state (starting, serving, draining,
// stopping), sockets and open connections (of the servers that count
// them: HTTPServer, TCPServer), the older generations still draining (it
// asks each over its control socket, which a generation keeps open while it
// drains), and the last MaxHistory upgrades with their outcome and reason.
// The history and the counters travel to each successor
// (BATON_HANDOFF_HISTORY), so the serving generation holds the service's;
// drain durations are those this generation saw end. The STATUS= line a
// successor sends says how long its upgrade took ("serving, generation 7,
// pid 4242, upgraded in 8.1ms"); a failed upgrade's says why.
//
// # Containers
//
// As a container's entrypoint the first generation is PID 1 of the pid
// namespace, whose exit makes the kernel kill every process in it. So
// after handing over and draining, a generation that is PID 1 stays as the
// namespace's init: its servers and sockets are closed, it reaps every
// process that ends, passes SIGTERM, SIGINT, SIGQUIT and SIGHUP on to the
// others (`docker kill -s HUP` upgrades the serving generation, `docker
// stop` stops it), and exits with the serving generation's status when it
// is gone. Use SIGHUP or `baton reload --pidfile` (Config.PIDFile) inside
// the container: after the first upgrade PID 1 is not the serving process
// and has no control socket.
//
// An init in front of the server (`docker run --init`, tini, dumb-init)
// breaks upgrades: it exits when its child, the first generation, exits
// after handing over, and the namespace dies with it. Make the server the
// entrypoint, or `baton run` (which stays PID 1 and supervises). Several
// containers in one network namespace (a Kubernetes pod) each have their
// own pid 1; control socket names are random and found through each
// process's fds, so they do not collide.
//
// # Predecessor killed mid-upgrade
//
// When the current generation dies (SIGKILL, crash) after starting a
// successor but before MAINPID, the successor sees its hand-over channel
// close without ABORT, claims the main PID itself (MAINPID=<self>,
// READY=1, STATUS=) and serves. Without a manager (started by hand, or under
// a supervisor that reads the PID file) that completes the upgrade. Under
// systemd the main process's death is what the manager acts on (docs/systemd-notes.md,
// "parent exits before MAINPID is accepted"): with NotifyAccess=main the
// successor's message is rejected ("reception only permitted for main
// PID"), the unit leaves active (Result=signal), the rest of the control
// group, the successor included, is killed (KillMode), and Restart=on-failure
// starts a fresh generation on the socket unit's sockets, which systemd
// kept open: clients wait in the backlog instead of being refused. With
// NotifyAccess=all it is a race: the successor learns of the death when the
// kernel closes the dead process's fds, which happens before the kernel
// reports the exit (SIGCHLD) to the manager; if the manager reads the
// successor's MAINPID first, MainPID moves, the old pid's exit is that of a
// stray process and the unit stays active; if it handles the exit first,
// the unit goes down as with NotifyAccess=main. Either way the outcome is a
// serving service when Restart=on-failure is set.
//
// # Other systems
//
// Upgrades are implemented for Linux only: they start the successor with
// the sockets at fds 3.. and LISTEN_PID set before its main runs
// (internal/spawn), talk over a SOCK_SEQPACKET channel whose peer is
// checked with SO_PEERCRED, and track generations through pidfds and
// /proc. Elsewhere (macOS, FreeBSD, Windows) New returns an Upgrader that
// runs the same program without them, so that a developer serves a
// handoff server on a laptop unchanged:
//
//   - Listen, ListenPacket and File bind and open afresh (sockets handed
//     over in LISTEN_FDS make New fail); a unix socket's path is removed
//     when its listener closes.
//   - Ready starts the servers and writes Config.PIDFile; there is no
//     manager, control socket or fd store.
//   - Wait returns after SIGTERM or SIGINT (unless Config.NoSignals), Stop,
//     or a failing server, having drained every server under DrainTimeout
//     as on Linux (StopDelay, Connection: close, IdleGrace, StreamGrace,
//     Hijacked); the PID file is removed.
//   - Upgrade returns an error wrapping ErrNotSupported that names the
//     system and says why; SIGHUP logs it (level Warn). The generation
//     keeps serving: stop it and start the new binary.
//
// The drain cannot peek into a socket there (pending_other.go): an idle
// keep-alive connection whose next request arrives just as IdleGrace ends
// may be closed instead of answered. On Windows only Ctrl-C and the
// console's close events arrive, as SIGINT and SIGTERM. `baton run`,
// `baton reload` and `baton stop` are Linux only too.
//
// # Traps
//
//   - Create the Upgrader before anything reads LISTEN_FDS or
//     NOTIFY_SOCKET, and never spawn programs before New: it unsets its
//     variables.
//   - A successor must call Ready; until then it is not main and must not
//     use sd_notify itself (it cannot: NOTIFY_SOCKET is held back), nor
//     accept connections outside Serve: one it accepted and then died with
//     would be lost.
//   - The pause at the cut-over is the listener's: a server on a listener
//     Listen did not return (net.Listen, activation, ln.(interface{
//     Unwrap() net.Listener}).Unwrap()) or on a packet socket goes on
//     serving until the drain (with a watch window, through the window),
//     sharing the socket with the successor.
//   - The drain starts when the generation ends, whether or not Wait is
//     called: a program that keeps its own signal handling still stops
//     accepting at the hand-over. Wait only waits for the drain.
//   - Another library reading LISTEN_FDS without unsetting it (go-systemd's
//     activation.Files(false)) creates *os.File values for fds 3..: keep
//     them referenced, their finalizers would close the sockets.
//   - HTTP serves a copy of srv: set every field of srv before calling
//     it. Handlers find the copy under http.ServerContextKey; srv's
//     RegisterOnShutdown functions run when the drain starts.
//   - HTTP/2 configured by the user (x/net/http2.ConfigureServer on srv)
//     gets its GOAWAY once, from srv's hooks at the drain start; an HTTP/2
//     connection whose TLS handshake ends after that gets it with its
//     first response. With net/http's own HTTP/2 (the default) it is sent
//     again to such late connections.
//   - A handler that streams must watch Draining(r.Context()) (or
//     r.Context(), cancelled at StreamGrace); one that watches neither is
//     cut at DrainTimeout.
//   - A WebSocket library that hijacks inside Accept is tracked while its
//     handler runs; register the connection with Hijacked to send the
//     close frame (1001) and to keep it tracked past the handler.
//   - Successors get the environment generation 1 started with (taken
//     before main), plus the hand-over's variables: os.Setenv at run time
//     does not reach them, so a start-up PATH+= does not grow each
//     generation.
//   - The sockets are shared open file descriptions: O_NONBLOCK set by one
//     generation is seen by the others. Never shutdown(2) a listening
//     socket; Close it.
//   - A unix socket path is never removed, neither on hand-over nor on
//     stop; a stale path nobody answers on is replaced at the next bind.
//   - A successor that dies after the manager accepted its MAINPID but
//     before it read MAIN cannot be undone: the old generation tries to
//     take the main PID back (MAINPID=<self>, accepted only with
//     NotifyAccess=all), keeps serving and reports the error.
//   - Under `baton run`, leave StopDelay out of the program: baton stops
//     the old program with SIGTERM at every upgrade, which it would take
//     for a stop and serve on for StopDelay; use `baton run --stop-delay`.
//   - Without /proc no start time can be read: the draining list is not
//     passed on and MaxDraining caps nothing.
//   - A stop signals the whole cgroup, this generation first, but the
//     successor may end before this generation handles its SIGTERM. A
//     successor that ends as a stopped process does (SIGTERM, SIGINT,
//     exit status 0: what a handoff successor stopped before READY
//     returns) makes the upgrade wait up to 500ms for this generation's
//     stop; when it comes the upgrade wraps ErrStopping, not
//     ErrSuccessorExited.
package handoff
