module github.com/batonhq/baton

go 1.26.8

require golang.org/x/sys v0.50.0

require github.com/coreos/go-systemd/v22 v22.7.0
