package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"
)

// FuzzRequest sends arbitrary bytes to a real server as a request: it
// answers every one with a reply line that decodes, a success only for a
// reload request and bad-request otherwise, and never hangs.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{`{"op":"reload"}` + "\n", `{"op":"stop"}` + "\n", "\n", "{", `{"op":"reload"}`, "\x00\xff\n", `{"op":"reload","x":1}` + "\n"} {
		f.Add([]byte(s))
	}
	s, err := Listen(func(context.Context) (int, error) { return 4242, nil })
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close() })
	name := s.ln.Addr().String()
	f.Fuzz(func(t *testing.T, req []byte) {
		c, err := net.Dial("unix", name)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = c.Write(req)
		_ = c.(*net.UnixConn).CloseWrite()
		line, err := bufio.NewReader(c).ReadBytes('\n')
		if err != nil {
			t.Fatalf("request %q: no reply line: %v", req, err)
		}
		var r Reply
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("request %q: reply %q: %v", req, line, err)
		}
		first, _, _ := bytes.Cut(req, []byte("\n"))
		var q Request
		reload := bytes.IndexByte(req, '\n') >= 0 && json.Unmarshal(first, &q) == nil && q.Op == "reload"
		switch {
		case reload && (r.Code != "" || r.PID != 4242):
			t.Errorf("reload request %q answered %+v", req, r)
		case !reload && r.Code != CodeBadRequest:
			t.Errorf("request %q answered %+v, want %s", req, r, CodeBadRequest)
		}
	})
}
