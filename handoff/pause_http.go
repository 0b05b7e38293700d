package handoff

// The HTTP side of a pause: while its generation is paused, an HTTPServer
// answers "Connection: close" (the lame duck of its drain, without the
// drain: no listener closed, no hook run, no connection closed), so that
// keep-alive clients move to the successor with their next request; a
// rollback turns it off. Idle connections stay open until the drain (or
// their next request).

func (s *HTTPServer) pauseServing() {
	select {
	case <-s.drainStarted:
	default:
		s.draining.Store(true)
	}
}

func (s *HTTPServer) resumeServing() {
	select {
	case <-s.drainStarted:
	default:
		s.draining.Store(false)
	}
}
