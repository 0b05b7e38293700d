//go:build linux

package supervisor

import (
	"context"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/generation"
	"github.com/batonhq/baton/internal/testproc"
)

// TestStateBoundedOverUpgrades checks that nothing the supervisor keeps
// grows with the number of generations: the pid map holds the CMDs still
// running, and the exit history is capped.
func TestStateBoundedOverUpgrades(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	for _, reap := range []bool{false, true} {
		name := map[bool]string{false: "wait", true: "reaper"}[reap]
		t.Run(name, func(t *testing.T) {
			sock, _ := listen(t)
			args, env := childArgs(t)
			s, err := New(Config{Args: args, Env: env, Sockets: []Socket{sock}, Drain: 10 * time.Second, ReapOrphans: reap})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			for s.PID() == 0 {
				time.Sleep(5 * time.Millisecond)
			}
			const upgrades = ExitHistory + 20
			for i := range upgrades {
				if _, err := s.Upgrade(t.Context()); err != nil {
					t.Fatalf("upgrade %d: %v", i+1, err)
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			// Run has joined every goroutine: all replaced CMDs are counted.
			st := s.Stats()
			if st.Upgrades != upgrades {
				t.Fatalf("%d upgrades, want %d", st.Upgrades, upgrades)
			}
			if n := len(st.ExitAfterTerm); n != ExitHistory {
				t.Errorf("exit history holds %d entries after %d upgrades, want %d", n, upgrades, ExitHistory)
			}
			s.mu.Lock()
			left := len(s.byPID)
			s.mu.Unlock()
			if left != 0 {
				t.Errorf("%d pids still tracked after Run", left)
			}
		})
	}
}

func TestAppendBounded(t *testing.T) {
	tests := []struct {
		name  string
		in    []time.Duration
		limit int
		want  []time.Duration
	}{
		{name: "empty", in: nil, limit: 3, want: []time.Duration{9}},
		{name: "room", in: []time.Duration{1, 2}, limit: 3, want: []time.Duration{1, 2, 9}},
		{name: "full", in: []time.Duration{1, 2, 3}, limit: 3, want: []time.Duration{2, 3, 9}},
		{name: "over", in: []time.Duration{1, 2, 3, 4}, limit: 3, want: []time.Duration{3, 4, 9}},
		{name: "one", in: []time.Duration{1}, limit: 1, want: []time.Duration{9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := generation.AppendBounded(tt.in, 9, tt.limit)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}
