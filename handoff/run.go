package handoff

import (
	"errors"
	"net/http"
)

// Run serves this generation with servers and returns when it has ended:
// it registers each one (Serve), declares the generation ready (Ready),
// waits for the hand-over or stop and the drain (Wait), and releases
// what the Upgrader holds (Close). It returns the first of their errors
// (Close's joined), nil after a clean hand-over or stop.
//
//	up, err := handoff.New(handoff.Config{})
//	ln, err := up.Listen("http", "tcp", ":8080")
//	err = up.Run(handoff.HTTP(srv, ln))
func (u *Upgrader) Run(servers ...Server) error {
	for _, s := range servers {
		u.Serve(s)
	}
	if err := u.Ready(); err != nil {
		return errors.Join(err, u.Close())
	}
	err := u.Wait()
	return errors.Join(err, u.Close())
}

// ListenAndServe serves srv as one generation of a service upgraded in
// place, and returns when that generation has ended (handed over to a
// successor and drained, or stopped): New(cfg), a listener on the socket
// named "http" (the manager's or the predecessor's, or srv.Addr bound
// now when started by hand; ":http", or ":https" with srv.TLSConfig, when
// srv.Addr is empty), HTTP(srv, ln) (TLS when srv.TLSConfig is set, its
// certificate in TLSConfig), then Run. SIGHUP upgrades, SIGTERM and
// SIGINT stop, unless cfg says otherwise.
//
// Unlike net/http's ListenAndServe it returns nil after a clean stop or
// hand-over: a program whose main returns then exits, and its successor
// serves on.
//
//	srv := &http.Server{Addr: ":8080", Handler: mux}
//	if err := handoff.ListenAndServe(srv, handoff.Config{}); err != nil {
//		log.Fatal(err)
//	}
func ListenAndServe(srv *http.Server, cfg Config) error {
	up, err := New(cfg)
	if err != nil {
		return err
	}
	addr := srv.Addr
	if addr == "" {
		addr = ":http"
		if srv.TLSConfig != nil {
			addr = ":https"
		}
	}
	ln, err := up.Listen("http", "tcp", addr)
	if err != nil {
		return errors.Join(err, up.Close())
	}
	return up.Run(HTTP(srv, ln))
}
