// Command gochild is internal/gochild's server as a command of its own:
// an HTTP server as a Go user writes it with go-systemd. With
// $GOCHILD_DIE_AFTER (a duration) it drains by itself that long after it
// is ready and exits 3: a crash that loses no request.
package main

import (
	"os"
	"time"

	"github.com/batonhq/baton/internal/gochild"
)

func main() {
	d, err := time.ParseDuration(os.Getenv("GOCHILD_DIE_AFTER"))
	os.Exit(gochild.Serve(gochild.Options{Name: "gochild", Die: err == nil, DieAfter: d}))
}
