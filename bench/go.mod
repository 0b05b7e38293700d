module github.com/batonhq/baton/bench

go 1.26.8

replace github.com/batonhq/baton => ../

require (
	github.com/cloudflare/tableflip v1.2.3
	github.com/coreos/go-systemd/v22 v22.7.0
)

require golang.org/x/sys v0.1.0 // indirect
