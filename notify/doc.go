// Package notify is a client for the sd_notify protocol: every message a
// service sends to its manager (systemd, or `baton run`), including fd
// passing to the fd store, the barrier and a watchdog helper that a
// successor generation can take over. It does everything go-systemd's
// daemon package does, and what that package lacks (see the table below).
//
// # Model
//
// The manager owns a datagram socket and names it in NOTIFY_SOCKET. A
// Client sends one AF_UNIX datagram per message, newline-separated
// KEY=VALUE lines, at most MaxMessageSize (4096) bytes; a longer message is
// an error (ErrTooLong), never truncated. The manager reads each datagram
// with SO_PASSCRED and attributes it to the sending pid, which must still be
// alive when the manager reads it: messages are sent by the calling process
// and a process that is about to exit calls Barrier first.
//
//	c, err := notify.FromEnv() // disabled (no-op) Client without NOTIFY_SOCKET
//	if err != nil {
//		return err // NOTIFY_SOCKET set but unusable: the error names it
//	}
//	defer c.Close()
//	var wg sync.WaitGroup
//	defer wg.Wait()
//	wg.Go(func() { _ = c.RunWatchdog(ctx, notify.WatchdogConfig{}) }) // ends with ctx
//	if err := c.Ready(); err != nil {
//		return err
//	}
//
// Without NOTIFY_SOCKET, FromEnv returns a disabled Client: every method is a
// cheap no-op returning nil and Enabled reports false. A nil *Client behaves
// the same. NOTIFY_SOCKET is never unset implicitly: UnsetEnv (the process)
// and WithoutEnv (a child's exec.Cmd.Env) do it when asked.
//
// Addresses: an absolute path or "@name" for an abstract socket, at most 107
// bytes (sockaddr_un). Dial and FromEnv check the address and that a socket
// is bound there (a connect probe that sends nothing), so a missing manager
// is an error at Dial naming the socket; a manager that goes away later
// makes each send fail with a *SocketError wrapping ECONNREFUSED or ENOENT.
// A manager whose queue stays full makes a send fail with ErrTimeout after
// Config.SendTimeout; no call waits longer. `vsock:` addresses (systemd
// 253+) are refused with ErrBadSocket.
//
// The manager's side is here too: Listen binds a socket for a supervisor's
// children (`baton run`) and Receive returns each datagram as a Message with
// the sender's pid, uid and gid from SCM_CREDENTIALS and its fds, dropping
// (as systemd does) datagrams that do not fit in MaxMessageSize.
//
// Messages, one method each: READY=1 (Ready), RELOADING=1 with
// MONOTONIC_USEC= (Reloading), STOPPING=1, STATUS=, ERRNO=, BUSERROR=,
// MAINPID=, MAINPID= and READY=1 in one datagram (HandOver), WATCHDOG=1,
// WATCHDOG=trigger, WATCHDOG_USEC=, EXTEND_TIMEOUT_USEC=, BARRIER=1 with one
// pipe fd (Barrier), FDSTORE=1 with FDNAME= and FDPOLL=0 (FDStore,
// FDStoreWith), FDSTOREREMOVE=1 (FDStoreRemove); Send and SendFiles for
// anything else, checked for size and NUL bytes.
//
// # Unit file
//
//	[Service]
//	Type=notify                  # notify-reload on systemd 253+
//	NotifyAccess=main            # a hand-over is sent by the main process
//	ExecStart=/usr/bin/myapp
//	ExecReload=/bin/kill -HUP $MAINPID
//	WatchdogSec=10s              # sets WATCHDOG_USEC; RunWatchdog pings every 5s
//	FileDescriptorStoreMax=16    # without it FDSTORE is ignored
//
// # Compared with go-systemd's daemon package (v22.7.0)
//
// Both send the same bytes for the same message (tested side by side), and
// on every WATCHDOG_USEC/WATCHDOG_PID input both accept, WatchdogEnabled and
// SdWatchdogEnabled give the same answer (tested on a grid of inputs).
//
//	                                  daemon (go-systemd)          notify
//	send a raw state string           SdNotify                     Send, SendFiles
//	READY/STOPPING/WATCHDOG           constants for SdNotify       Ready, Stopping, Watchdog
//	STATUS, ERRNO, BUSERROR, ...      build the string yourself    Status, Errno, BusError, ...
//	no NOTIFY_SOCKET                  (false, nil)                 disabled Client: nil errors, Enabled()
//	abstract "@name" socket           yes                          yes
//	bad NOTIFY_SOCKET                 net error                    *SocketError naming it, at Dial
//	unset NOTIFY_SOCKET               bool parameter, per call     UnsetEnv / WithoutEnv, never implicit
//	watchdog timeout, WATCHDOG_PID    SdWatchdogEnabled            WatchdogEnabled, *EnvError naming it
//	empty WATCHDOG_USEC/_PID          "not set"                    malformed, as in libsystemd
//	watchdog ping loop                no                           RunWatchdog (half the timeout, ctx)
//	successor takes the watchdog      no                           WatchdogConfig.ClaimFromParent
//	RELOADING=1 + MONOTONIC_USEC      SdNotifyMonotonicUsec, glue  Reloading
//	MAINPID, MAINPID+READY at once    build the string yourself    MainPID, HandOver
//	BARRIER=1 + pipe, wait for close  no                           Barrier(ctx)
//	FDSTORE with SCM_RIGHTS           no                           FDStore, FDStoreWith (FDPOLL=0)
//	more than 253 fds                 no                           batches, same FDNAME each
//	FDSTOREREMOVE, FDNAME rules       no                           FDStoreRemove, CheckFDName
//	message over 4096 bytes           sent, dropped by manager     ErrTooLong, nothing sent
//	line break in a value             sent, splits the message     ErrInvalid, nothing sent
//	manager's queue full              blocks                       ErrTimeout after SendTimeout
//	socket                            one per message              one per Client, concurrent use
//	manager side (receive, creds)     no                           Listener, Message
//
// # Traps
//
//   - After HandOver the old generation says nothing more to the manager:
//     no STOPPING, READY or RELOADING. With NotifyAccess=all a late
//     STOPPING=1 stops the service the successor now runs.
//   - Before exiting after any notification, call Barrier: the manager
//     attributes a datagram by the sender's pid, and a message from a
//     process that is gone is lost or misattributed. This matters most for
//     HandOver: if the parent exits before the manager reads MAINPID, the
//     unit dies and takes the successor with it.
//   - The successor cannot send its own MAINPID under NotifyAccess=main or
//     exec: the current main process sends HandOver. Until then the manager
//     drops everything the successor sends (STATUS, FDSTORE, watchdog
//     pings: "reception only permitted for main PID").
//   - FDSTORE is silently ignored unless FileDescriptorStoreMax= > 0, and
//     the stored fds come back through LISTEN_FDS after the socket units' fds,
//     possibly as duplicates of them.
//   - RunWatchdog in a successor needs ClaimFromParent, and must claim while
//     the parent is still alive (it compares WATCHDOG_PID with getppid).
//   - Barrier waits as long as the manager holds the fd and ctx allows: pass
//     a deadline (systemd closes the fd as soon as it has read the message,
//     accepted or not).
//   - A Message from Listener.Receive owns its Files: close them or pass
//     them on, or they leak.
//   - A child that is not a generation of the service (a helper program)
//     inherits NOTIFY_SOCKET unless started with WithoutEnv; under
//     NotifyAccess=all its messages count as the service's.
package notify
