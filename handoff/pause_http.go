package handoff

import "context"

// The HTTP side of a pause: while its generation is paused, an HTTPServer
// is in the drain's lame duck (drain.Server.EnterLameDuck: responses say
// "Connection: close", HTTP/2 connections get GOAWAY, idle keep-alive
// connections close when nothing is on the wire), without the drain: no
// listener closed, no hook run, Draining stays open. A rollback turns it
// off; the drain, once, at the end.

func (s *HTTPServer) pauseServing(ctx context.Context) {
	s.configure(ctx) // the Upgrader's graces, before the lame duck reads them
	s.d.EnterLameDuck()
}

func (s *HTTPServer) resumeServing() { s.d.LeaveLameDuck() }
