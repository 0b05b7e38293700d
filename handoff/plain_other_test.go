//go:build !linux

package handoff

import (
	"context"
	"testing"

	"github.com/batonhq/baton/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

func newPlainForTest(cfg Config) (*Upgrader, error) { return New(cfg) }

func plainReady(u *Upgrader) error { return u.Ready() }

func plainUpgrade(u *Upgrader) error {
	_, err := u.Upgrade(context.Background())
	return err
}
