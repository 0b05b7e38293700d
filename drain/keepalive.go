package drain

import (
	"net/http"
	"reflect"
	"sync/atomic"
	"unsafe"
)

// keepAliveSwitch follows srv.SetKeepAlivesEnabled on the user's server,
// which serves nothing (the Server serves a copy of it): net/http keeps
// the switch in an unexported sync/atomic.Bool and offers no way to read
// it. keepAliveOf finds that field by name and type; when a later Go
// renames or retypes it, the switch reads as "enabled" and the package's
// test of SetKeepAlivesEnabled fails, so the change is seen.
type keepAliveSwitch struct {
	disabled *atomic.Bool // srv's disableKeepAlives; nil when not found
}

func keepAliveOf(srv *http.Server) keepAliveSwitch {
	f := reflect.ValueOf(srv).Elem().FieldByName("disableKeepAlives")
	if !f.IsValid() || f.Type() != reflect.TypeFor[atomic.Bool]() {
		return keepAliveSwitch{}
	}
	// The field is read atomically, as net/http writes it.
	return keepAliveSwitch{disabled: (*atomic.Bool)(unsafe.Pointer(f.UnsafeAddr()))}
}

// off reports whether keep-alives are disabled on the user's server.
func (k keepAliveSwitch) off() bool { return k.disabled != nil && k.disabled.Load() }
