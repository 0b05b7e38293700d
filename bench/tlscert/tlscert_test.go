package tlscert

import (
	"crypto/tls"
	"testing"
)

func TestHandshake(t *testing.T) {
	p, err := Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake() // the client's side is checked
			c.Close()
		}
	}()
	fromFile, err := Client(p.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []*tls.Config{p.Client, fromFile} {
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		c.Close()
	}
	if c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "127.0.0.1"}); err == nil {
		c.Close()
		t.Error("a client without the certificate verified it")
	}
}
