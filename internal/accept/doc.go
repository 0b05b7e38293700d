// Package accept is the retry policy of baton's accept loops (handoff's
// TCPServer, the control socket): an Accept that fails because a resource
// ran out (EMFILE, ENFILE, ENOBUFS, ENOMEM, and ECONNABORTED should the net
// package let it through) must not end the server. As net/http's
// Server.Serve does, the loop sleeps 5 ms, doubling up to 1 s while the
// errors go on, and accepts again; the caller logs the first error of each
// burst only.
package accept
