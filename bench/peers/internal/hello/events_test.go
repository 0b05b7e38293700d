package hello

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/bench/load"
)

func TestEventsEndCleanlyAtTheDrain(t *testing.T) {
	drain := make(chan struct{})
	srv := httptest.NewServer(Events(func(*http.Request) <-chan struct{} { return drain }))
	defer srv.Close()
	observed := make(chan int, 100)
	stop := make(chan struct{})
	done := make(chan *load.Result, 1)
	go func() {
		res, err := load.Run(t.Context(), load.Config{
			Addr: strings.TrimPrefix(srv.URL, "http://"), Clients: 2, Duration: time.Minute, Proto: load.Events, Stop: stop,
			Observe: func(pid int, _ time.Time) {
				select {
				case observed <- pid:
				default:
				}
			},
		})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	for range 4 { // both streams are open and ticking
		<-observed
	}
	close(drain) // every stream ends; the reopened ones end after one event
	<-observed
	close(stop)
	res := <-done
	counts := load.Count(res.Records)
	if counts.Failed() != 0 || counts.Total() < 2 {
		t.Fatalf("counts %v, errors %v", counts.Failures(), res.Errors)
	}
	for _, r := range res.Records {
		if r.Events > 0 && int(r.Pid) != os.Getpid() {
			t.Errorf("stream %+v: pid %d in the events, want %d", r, r.Pid, os.Getpid())
		}
	}
}
