package handoff

// Environment between a generation and its successor. New reads and unsets
// them.
const (
	envFD     = "BATON_HANDOFF_FD"     // fd of the hand-over channel (a SOCK_SEQPACKET socketpair)
	envGen    = "BATON_HANDOFF_GEN"    // the successor's generation number
	envExe    = "BATON_HANDOFF_EXE"    // the executable path of generation 1
	envNotify = "BATON_HANDOFF_NOTIFY" // the manager's NOTIFY_SOCKET, held back until main
	envBound  = "BATON_HANDOFF_BOUND"  // positions (fd - 3) of the sockets and files a generation opened
	envProto  = "BATON_HANDOFF_PROTO"  // the predecessor's hand-over protocol version
	// The service's upgrade history and counters (JSON), and when the
	// upgrade that started the successor was requested (unix ns).
	envHistory = "BATON_HANDOFF_HISTORY"
	// The generations still draining when the successor started, oldest
	// first, its predecessor last: GEN:PID:START entries separated by
	// commas, START the process's start time (/proc/PID/stat field 22).
	envDraining = "BATON_HANDOFF_DRAINING"
	// What the upgrade did before it started the successor (the draining
	// generations it force-closed), for the successor's first STATUS=.
	envStatus = "BATON_HANDOFF_STATUS"
	// Set when the predecessor has a watch window (Config.WatchWindow),
	// to its length ("1" from a release that did not say): a successor on
	// probation refuses upgrades until it has passed, then waits for MAIN.
	envWatch = "BATON_HANDOFF_WATCH"
)

// protoVersion is the version of the hand-over protocol (the variables and
// messages between a generation and its successor) this package speaks.
// It changes only when a change makes two releases unable to hand over;
// a predecessor that sends no version (before versions) speaks 1. A var
// for tests.
var protoVersion = 1

// Messages on the hand-over channel.
const (
	msgReady = "READY" // successor -> predecessor: serving, ready to take over
	msgMain  = "MAIN"  // predecessor -> successor: the manager knows you as main
	msgAbort = "ABORT" // predecessor -> successor: upgrade abandoned, exit
	// msgVersion + " N": successor -> predecessor instead of READY: it
	// speaks version N, not the predecessor's, and exits.
	msgVersion = "VERSION"
	// msgReady + " " + readyProbation: successor -> predecessor, when
	// envWatch is set: ready, and it knows msgServe. A successor of a
	// release without watch windows says READY alone and is handed the
	// main PID at once.
	readyProbation = "probation"
	// msgServe: predecessor -> successor, instead of MAIN, in a watch
	// window: start serving but say nothing to the manager; MAIN follows
	// when the window has passed, ABORT when the predecessor stops.
	msgServe = "SERVE"
	// msgStopping: successor -> predecessor, on probation: it was asked
	// to stop (the predecessor rolls back at once).
	msgStopping = "STOPPING"
)
