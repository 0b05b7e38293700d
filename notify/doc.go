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
//	c.Ready()
//	go c.RunWatchdog(ctx, notify.WatchdogConfig{}) // joined by the caller
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
// # Compared with go-systemd's daemon package
//
//	                                      go-systemd daemon       notify
//	READY/STATUS/... as a raw string      SdNotify                Send, Ready, Status, ...
//	no NOTIFY_SOCKET                      (false, nil)            disabled Client, nil errors, Enabled()
//	abstract @socket                      yes                     yes
//	unset NOTIFY_SOCKET                   bool parameter          UnsetEnv / WithoutEnv, never implicit
//	watchdog interval                     SdWatchdogEnabled       WatchdogEnabled
//	WATCHDOG_PID check                    yes                     yes, plus ClaimFromParent for a successor
//	watchdog ping loop                    no                      RunWatchdog (half the interval, ctx)
//	MAINPID hand-over in one datagram     no                      HandOver
//	BARRIER=1 + pipe, wait for close      SdNotifyBarrier         Barrier(ctx), no-op without socket
//	FDSTORE with SCM_RIGHTS               no                      FDStore, batches of 253, FDPOLL=0
//	FDSTOREREMOVE, FDNAME validation      no                      FDStoreRemove, CheckFDName
//	RELOADING=1 + MONOTONIC_USEC          no (caller builds it)   Reloading
//	4096-byte limit                       not checked             ErrTooLong, nothing sent
//	value with a line break (STATUS=)     sent as is              ErrInvalid, nothing sent
//	manager's queue full                  blocks                  ErrTimeout after SendTimeout
//	socket per message                    new socket each call    one socket per Client
//
// # Traps
//
//   - After HandOver the old generation says nothing more to the manager:
//     no STOPPING, READY or RELOADING (SYSTEMD.md rule 2). With
//     NotifyAccess=all a late STOPPING=1 stops the service the successor now
//     runs.
//   - Before exiting after any notification, call Barrier: the manager
//     attributes a datagram by the sender's pid, and a message from a process
//     that is gone is lost or misattributed (SYSTEMD.md rule 1). This
//     matters most for HandOver: if the parent exits before the manager
//     reads MAINPID, the unit dies and takes the successor with it.
//   - The successor cannot send its own MAINPID under NotifyAccess=main or
//     exec: the current main process sends HandOver.
//   - FDSTORE is silently ignored unless FileDescriptorStoreMax= > 0, and
//     the stored fds come back through LISTEN_FDS after the socket units' fds,
//     possibly as duplicates of them.
//   - RunWatchdog in a successor needs ClaimFromParent, and must claim while
//     the parent is still alive (it compares WATCHDOG_PID with getppid).
//   - A child that is not a generation of the service (a helper program)
//     inherits NOTIFY_SOCKET unless started with WithoutEnv; under
//     NotifyAccess=all its messages count as the service's.
package notify
