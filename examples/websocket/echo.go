package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/coder/websocket"

	"github.com/batonhq/baton/handoff"
)

// echo serves one WebSocket: each message is written back as it came.
//
// The session ends when the client closes it, or when the generation
// drains: then goingAway (run by the HTTPServer, see handoff.Hijacked)
// sends the close frame with 1001 while echo goes on reading, so that the
// library answers the client's close frame, and the handler returns once
// the close handshake is over (or the library's 5 s wait for it). The
// drain, and so the process, waits for done.
func echo(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept answered the request
	}
	s := &session{c: c}
	done := handoff.Hijacked(r.Context(), s.goingAway)
	defer done()
	// Closed by then, or closed now; it also waits for a Close in
	// progress in goingAway.
	defer func() { _ = c.CloseNow() }()
	s.serve(r.Context())
}

// session is one echoing connection. mu orders each echo against the
// decision to go away: a message taken (mu held, leaving false) is echoed
// before the close frame is written; one taken after is dropped.
type session struct {
	c *websocket.Conn

	mu      sync.Mutex
	leaving bool
	echoed  int
}

func (s *session) serve(ctx context.Context) {
	for {
		typ, b, err := s.c.Read(ctx)
		if err != nil {
			return // closed: by the client, or by goingAway
		}
		s.mu.Lock()
		if !s.leaving {
			if err = s.c.Write(ctx, typ, b); err == nil {
				s.echoed++
			}
		}
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// goingAway closes the connection with 1001 and the number of messages
// echoed; it returns when the close handshake is over.
func (s *session) goingAway() {
	s.mu.Lock()
	s.leaving = true
	n := s.echoed
	s.mu.Unlock()
	_ = s.c.Close(websocket.StatusGoingAway, fmt.Sprintf("restarting: echoed %d", n))
}
