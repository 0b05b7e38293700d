// Package testproc holds the test helpers every baton package shares: the
// test binary re-run as a named helper process (the os/exec tests' pattern),
// leak gates for file descriptors and goroutines, and the rule that a test
// needing root or a real systemd skips on a laptop but fails under CI=true.
//
// A package's TestMain registers its helpers and hands over to Main:
//
//	func TestMain(m *testing.M) {
//		testproc.Register("echo-fds", echoFDs)
//		testproc.Main(m)
//	}
//
// and a test starts one with Command, giving it real fds through ExtraFiles.
//
// Traps:
//   - Leak gates compare process-wide state: a test that uses them must not
//     call t.Parallel, and must close what it opened before its cleanups run.
//   - A helper runs inside the test binary before any test: it must not rely
//     on the testing package and ends the process itself (Main exits with 0
//     when the helper returns).
package testproc
