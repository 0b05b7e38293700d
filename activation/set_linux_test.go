package activation

import (
	"errors"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/batonhq/baton/internal/testproc"
)

// heldSet builds a Set over real sockets of this process, as Receive would
// after classifying them; fds are the duplicates' own numbers.
func heldSet(t *testing.T, files ...File) *Set {
	t.Helper()
	for i := range files {
		files[i].FD = int(files[i].File.Fd())
	}
	return &Set{files: files}
}

func tcpListenerFile(t *testing.T, name string) (File, net.Addr) {
	t.Helper()
	l := listenTCP(t)
	addr := l.Addr()
	return File{Name: name, Kind: KindTCP, Listening: true, Addr: addr, File: fileOf(t, l)}, addr
}

func TestSetTakeAllOrNone(t *testing.T) {
	testproc.CheckFDs(t)
	good, _ := tcpListenerFile(t, "http")
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	// Claims to be a listener, but net.FileListener refuses it.
	bad := File{Name: "http", Kind: KindTCP, Listening: true, File: devnull}
	set := heldSet(t, good, bad)
	ls, err := set.Listeners("http")
	if err == nil {
		for _, l := range ls {
			_ = l.Close()
		}
		t.Fatal("Listeners took a file that is no socket")
	}
	if len(set.Files()) != 2 {
		t.Errorf("after a failed Listeners the Set holds %d fds, want both", len(set.Files()))
	}
	if err := set.Close(); err != nil {
		t.Fatal(err)
	}
	if len(set.Files()) != 0 || set.Close() != nil {
		t.Errorf("Close did not empty the Set, or a second Close failed")
	}
}

func TestSetLookups(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	web, webAddr := tcpListenerFile(t, "web")
	web.Aliases = []string{"stored"}
	api, _ := tcpListenerFile(t, "api")
	set := heldSet(t, web, api)
	defer set.Close()

	if diff := cmp.Diff([]string{"web", "stored", "api"}, set.Names()); diff != "" {
		t.Errorf("Names (-want +got):\n%s", diff)
	}
	_, err := set.PacketConn("web")
	var lerr *LookupError
	if !errors.Is(err, ErrNoSocket) || !errors.As(err, &lerr) || lerr.Name != "web" || len(lerr.Have) != 2 {
		t.Errorf("PacketConn(web) = %v, want a LookupError for ErrNoSocket listing 2 fds", err)
	}
	want := `activation: no datagram socket named "web" (have "web" (also "stored"): tcp listener ` + webAddr.String() +
		`, "api": tcp listener ` + api.Addr.String() + `)`
	if err.Error() != want {
		t.Errorf("error\n got %s\nwant %s", err, want)
	}
	l, err := set.Listener("stored") // by its alias
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Addr().String() != webAddr.String() {
		t.Errorf("Listener(stored) on %s, want %s", l.Addr(), webAddr)
	}
	if _, err := set.Listener("web"); !errors.Is(err, ErrNoSocket) {
		t.Errorf("web taken twice: %v", err)
	}

	// Concurrent lookups and Close, for the race detector.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if l, err := set.Listener("api"); err == nil {
				_ = l.Close()
			}
			_ = set.Files()
			_ = set.Names()
		})
	}
	wg.Go(func() { _ = set.Close() })
	wg.Wait()
}

func TestNilSet(t *testing.T) {
	var set *Set
	if set.Files() != nil || set.Names() != nil || set.Close() != nil {
		t.Error("a nil Set is not empty")
	}
	if _, err := set.Listener("x"); !errors.Is(err, ErrNoSocket) {
		t.Errorf("Listener on a nil Set: %v", err)
	}
	if _, err := set.File("x"); !errors.Is(err, ErrNoSocket) {
		t.Errorf("File on a nil Set: %v", err)
	}
}

func TestKindString(t *testing.T) {
	got := []string{}
	for k := KindOther; k <= KindMqueue+1; k++ {
		got = append(got, k.String())
	}
	want := []string{"other", "tcp", "udp", "unix", "unixgram", "unixpacket", "fifo", "netlink", "mqueue", "Kind(9)"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
