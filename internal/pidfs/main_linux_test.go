package pidfs

import (
	"testing"

	"github.com/batonhq/baton/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }
