package testproc

import (
	"os"
	"testing"
)

// Install puts a copy of the executable src at dst by rename, as a
// package manager installs a new release: a process running dst keeps the
// old file, the next exec of dst gets the new one.
func Install(t testing.TB, src, dst string) {
	t.Helper()
	content, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	InstallContent(t, dst, content)
}

// InstallContent puts an executable holding content at dst, by rename as
// Install does.
func InstallContent(t testing.TB, dst string, content []byte) {
	t.Helper()
	tmp := dst + ".new"
	if err := os.WriteFile(tmp, content, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}
