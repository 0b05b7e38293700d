package load

import (
	"bufio"
	"net"
	"testing"
	"time"
)

const eventsHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Pid: 11\r\nTransfer-Encoding: chunked\r\n\r\n"

func TestStreamClassifiesEnds(t *testing.T) {
	tests := []struct {
		name   string
		answer string // after the request; the server then closes
		want   Class
		events int32
	}{
		{name: "clean end", answer: eventsHead + "a\r\ndata: 12\n\n\r\n" + "b\r\n: comment\n\n\r\n" + "f\r\nid: 2\ndata:12\n\n\r\n0\r\n\r\n", want: OK, events: 2},
		{name: "closed mid-stream", answer: eventsHead + "a\r\ndata: 12\n\n\r\n", want: AbruptEnd, events: 1},
		{name: "closed mid-chunk", answer: eventsHead + "a\r\ndata:", want: AbruptEnd},
		{name: "not chunked", answer: "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 12\n\n", want: AbruptEnd, events: 1},
		{name: "malformed chunk", answer: eventsHead + "zz\r\n", want: AbruptEnd},
		{name: "not an event stream", answer: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok", want: Other},
		{name: "status", answer: "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", want: Status},
		{name: "empty reply", answer: "", want: EOFNew},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := rawServer(t, func(_ int, c *net.TCPConn) {
				if readRequest(bufio.NewReader(c)) {
					_, _ = c.Write([]byte(tt.answer))
				}
			})
			var pids []int
			cfg := &Config{Addr: addr, Timeout: 2 * time.Second, Proto: Events, Observe: func(pid int, _ time.Time) { pids = append(pids, pid) }}
			c := &client{cfg: cfg, start: time.Now()}
			var dialer net.Dialer
			rec, err := c.doStream(t.Context(), &dialer)
			if rec.Class != tt.want || rec.Events != tt.events {
				t.Errorf("class %v events %d (err %v), want %v and %d", rec.Class, rec.Events, err, tt.want, tt.events)
			}
			if int32(len(pids)) != tt.events {
				t.Errorf("observed %v", pids)
			}
			if tt.events > 0 && (rec.Pid != 12 || pids[0] != 12) {
				t.Errorf("pid %d, observed %v, want 12 from the first event", rec.Pid, pids)
			}
			if c.conn != nil {
				t.Error("connection kept after the stream")
			}
		})
	}
}

func TestStreamStopIsNotAFailure(t *testing.T) {
	addr := rawServer(t, func(_ int, c *net.TCPConn) {
		if !readRequest(bufio.NewReader(c)) {
			return
		}
		_, _ = c.Write([]byte(eventsHead + "a\r\ndata: 12\n\n\r\n"))
		_, _ = c.Read(make([]byte, 1)) // until the client closes
	})
	stop := make(chan struct{})
	observed := make(chan int, 2)
	var res *Result
	done := make(chan error, 1)
	go func() {
		var err error
		res, err = Run(t.Context(), Config{
			Addr: addr, Clients: 2, Duration: time.Minute, Proto: Events, Stop: stop,
			Observe: func(pid int, _ time.Time) { observed <- pid },
		})
		done <- err
	}()
	<-observed
	<-observed // both streams are open and have their event
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	counts := Count(res.Records)
	if counts.Total() != 2 || counts.Failed() != 0 {
		t.Fatalf("counts %v, errors %v", counts, res.Errors)
	}
	for _, r := range res.Records {
		if r.Events != 1 || r.Pid != 12 {
			t.Errorf("record %+v", r)
		}
	}
}
