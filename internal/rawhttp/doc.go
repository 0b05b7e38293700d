// Package rawhttp is the HTTP/1.1 client of baton's load drivers (baton
// demo and the tests that count failed requests across upgrades). It writes
// requests and reads responses itself over one net.Conn, so that no failure
// is retried unseen: net/http's Transport replays a GET whose reused
// connection was closed before any response byte, which would hide exactly
// the failures being counted.
package rawhttp
