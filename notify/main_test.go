package notify

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
)

func TestMain(m *testing.M) {
	testproc.Register("notify-handover", helperHandOver)
	testproc.Register("notify-watchdog", helperWatchdog)
	testproc.Main(m)
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "helper: "+format+"\n", args...)
	os.Exit(1)
}

// helperHandOver is an old generation: READY, then the hand-over to the pid
// in its argument, then a barrier before it exits.
func helperHandOver() {
	c, err := FromEnv()
	if err != nil {
		fatal("%v", err)
	}
	if err := c.Ready(); err != nil {
		fatal("%v", err)
	}
	if err := c.HandOver(4242); err != nil {
		fatal("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Barrier(ctx); err != nil {
		fatal("barrier: %v", err)
	}
	if err := c.Close(); err != nil {
		fatal("%v", err)
	}
}

// helperWatchdog runs the watchdog for 200ms with ClaimFromParent as its
// argument says, then prints WATCHDOG_PID and sends STATUS=done.
func helperWatchdog() {
	c, err := FromEnv()
	if err != nil {
		fatal("%v", err)
	}
	cfg := WatchdogConfig{ClaimFromParent: testproc.Args()[0] == "claim"}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := c.RunWatchdog(ctx, cfg); err != nil {
		fatal("%v", err)
	}
	fmt.Println(os.Getenv(EnvWatchdogPID))
	if err := c.Status("done"); err != nil {
		fatal("%v", err)
	}
}
