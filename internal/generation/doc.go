// Package generation holds what package handoff (a Go server's own
// generations) and internal/supervisor (`baton run`'s CMDs) both have
// with the same meaning, so that they cannot drift apart: the outcomes of
// an upgrade, the race between an upgrade and a stop of the whole
// service, the default cap on draining generations, and the bounded
// history both keep.
//
// Model: an upgrade ends in one Outcome. A stop of a service signals
// every process of its cgroup; the new process may end before the old one
// has handled its own SIGTERM, and an upgrade whose new process ended as
// a stopped process does (StoppedLike) waits up to StopRaceGrace for the
// stop (AwaitStop) before it calls that a failure.
//
// Traps:
//   - handoff and `baton status --json` print the outcome names: they are
//     part of the output format; change none.
package generation
