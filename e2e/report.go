package e2e

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// EnvReport names a file to which Report appends each scenario's line, so
// that a CI run shows the numbers of passing scenarios too (go test prints
// the log of a passing test only with -v).
const EnvReport = "BATON_E2E_REPORT"

var reportMu sync.Mutex

// Report logs a scenario's numbers with t.Logf and appends them, with the
// test's name, to the file named by BATON_E2E_REPORT when it is set.
func Report(t testing.TB, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Log(line)
	path := os.Getenv(EnvReport)
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("e2e report: %v", err)
		return
	}
	_, err = fmt.Fprintf(f, "%s: %s\n", t.Name(), line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Errorf("e2e report: %v", err)
	}
}
