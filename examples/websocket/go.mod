module github.com/batonhq/baton/examples/websocket

go 1.26.0

require (
	github.com/batonhq/baton v0.0.0
	github.com/coder/websocket v1.8.15
)

require golang.org/x/sys v0.50.0 // indirect

replace github.com/batonhq/baton => ../..
