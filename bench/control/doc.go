// Package control drives upgrades during a load run and follows their
// effects: which process answers (Tracker, fed by the load generator with
// each answer's X-Pid), when each old generation exits (Watcher, polling
// /proc), and the upgrades themselves (Run, firing a Trigger every period).
//
// Handoff latency of one upgrade is the time from just before the trigger
// (the kill(2) of a signal, the start of a command) to the end of the first
// answer from a process that had never answered before. An old generation's
// life after handover runs from that first answer of its successor to its
// exit, as seen in /proc (gone, or a zombie).
//
// Traps:
//   - Processes started by a peer (its successors) are not children of the
//     benchmark; when their parent exits they are re-parented, and without
//     a child subreaper nobody may reap them. The Watcher therefore counts a
//     zombie as exited, and reaps it when it can.
//   - A pid that has answered once never becomes current again, also when
//     it keeps answering kept-alive connections while it drains.
package control
