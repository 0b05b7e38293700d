// Package exampletest runs the examples under examples/ in their own tests
// as systemd would: the test binary re-run as a named helper
// (internal/testproc), started socket-activated with its socket at fd 3
// (internal/spawn), its generations followed through the pid file the
// example writes, upgraded with SIGHUP and stopped with SIGTERM.
//
// An example's TestMain registers its run function and hands over to Main:
//
//	func TestMain(m *testing.M) {
//		exampletest.Register("tcp", func(pidfile string, _ []string) error {
//			return run("127.0.0.1:0", pidfile)
//		})
//		exampletest.Main(m)
//	}
//
// and a test starts the first generation with Start:
//
//	s := exampletest.Start(t, exampletest.Config{Helper: "tcp", Socket: "echo"})
//	gen2 := s.Upgrade() // SIGHUP, and the pid file names the successor
//	s.Stop()            // SIGTERM, every generation gone, none failed
//
// The nested modules (examples/grpc, examples/websocket, examples/metrics)
// use it too: the go command allows an import of an internal package from
// any package whose import path lies in the tree of internal's parent, and
// theirs lie under github.com/batonhq/baton (their go.mod replaces the root
// module with ../..).
//
// Traps:
//   - Main makes the test process the subreaper of its descendants: each
//     generation is orphaned when its predecessor exits and is reparented
//     to the test, which reaps the ones a Server knows (Stop, cleanup).
//   - A generation whose run fails appends its error to the Server's
//     ErrFile; Stop fails the test for it.
//   - Signals go only to generations a Server started or read from its pid
//     file, and only while they run.
//   - Linux only, like the examples' tests.
package exampletest
