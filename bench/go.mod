module github.com/batonhq/baton/bench

go 1.26.0

replace github.com/batonhq/baton => ../

require (
	github.com/cloudflare/tableflip v1.2.3
	github.com/coreos/go-systemd/v22 v22.7.0
	golang.org/x/net v0.60.0
)

require (
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
)
