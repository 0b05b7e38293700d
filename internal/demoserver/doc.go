// Package demoserver is the HTTP server `baton demo` upgrades: a few
// lines of package handoff around a handler that answers every request
// with its process's pid (X-Pid) and generation (X-Generation), so that a
// client sees which generation served it.
//
// It lives in a package, not only in examples/http, so that an installed
// baton binary (no checkout, no go command) can run it: baton demo starts
// a copy of its own executable as the server.
//
//	err := demoserver.Run([]string{"-listen", "127.0.0.1:8080"}, os.Stderr)
//
// Started by hand it binds its socket; started by an upgrade, or by
// systemd, it takes the socket it is given (LISTEN_FDS). SIGHUP upgrades
// it, SIGTERM drains and stops it.
//
// Traps:
//   - It is a demo: no TLS, no timeouts beyond ReadHeaderTimeout, one
//     route. examples/http is the server to copy from.
package demoserver
