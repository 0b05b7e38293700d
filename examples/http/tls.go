package main

import (
	"crypto/tls"
	"errors"
	"fmt"
)

// tlsFiles names the certificate and key that -tls-cert and -tls-key load.
type tlsFiles struct{ cert, key string }

// config returns the server's TLS configuration, or nil for plain HTTP when
// neither file is named. Given as srv.TLSConfig to handoff.HTTP with the
// plain listener, it serves TLS as srv.ServeTLS would: h2 and http/1.1 by
// ALPN. Each generation loads the files anew, so an upgrade also picks up a
// renewed certificate; one that cannot load it fails before Ready and the
// running generation keeps serving.
func (f tlsFiles) config() (*tls.Config, error) {
	if f.cert == "" && f.key == "" {
		return nil, nil
	}
	if f.cert == "" || f.key == "" {
		return nil, errors.New("-tls-cert and -tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, fmt.Errorf("load tls certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
}
