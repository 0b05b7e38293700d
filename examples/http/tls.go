package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
)

var (
	tlsCert = flag.String("tls-cert", "", "serve HTTPS (h2 and http/1.1) with this PEM certificate (chain)")
	tlsKey  = flag.String("tls-key", "", "the PEM private key of -tls-cert")
)

// serverTLS returns the server's TLS configuration with the certificate of
// -tls-cert and -tls-key, or nil for plain HTTP when neither is set. Given
// as srv.TLSConfig to handoff.HTTP with the plain listener, it serves TLS
// as srv.ServeTLS would: h2 and http/1.1 by ALPN. Each generation loads
// the files anew, so an upgrade also picks up a renewed certificate; a
// successor that cannot load it fails before Ready, and the running
// generation keeps serving.
func serverTLS() (*tls.Config, error) {
	if *tlsCert == "" && *tlsKey == "" {
		return nil, nil
	}
	if *tlsCert == "" || *tlsKey == "" {
		return nil, errors.New("-tls-cert and -tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
	if err != nil {
		return nil, fmt.Errorf("load tls certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
}
