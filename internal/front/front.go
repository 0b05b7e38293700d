package front

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero values of Config.
const (
	// DefaultWait bounds how long a request waits for a ready generation
	// before it is answered 503.
	DefaultWait = 10 * time.Second
	// DefaultLameDuck is how long, at Shutdown, responses say
	// "Connection: close" before idle client connections are closed.
	DefaultLameDuck = time.Second
	// DefaultCheckInterval is how often Check looks whether its probe
	// connection was accepted.
	DefaultCheckInterval = 5 * time.Millisecond
)

// Socket is one public stream socket the front serves.
type Socket struct {
	Name string   // its LISTEN_FDNAMES entry, given to the private sockets too
	File *os.File // a listening stream socket, owned by the caller
}

// Config configures a Front. The zero value of every field but Sockets is
// valid.
type Config struct {
	// Sockets are the public listening sockets; each generation gets one
	// private socket per public one, with the same name, in this order.
	Sockets []Socket
	// Dir is where the private sockets are made, in a fresh directory
	// of mode 0700; "" means os.TempDir().
	Dir string
	// Wait bounds how long a request waits when no generation is ready;
	// then it is answered 503 Service Unavailable. 0 means DefaultWait.
	Wait time.Duration
	// LameDuck is how long Shutdown answers with "Connection: close"
	// before closing idle client connections; 0 means DefaultLameDuck,
	// negative none.
	LameDuck time.Duration
	// Logger receives the front's events; nil means slog.Default().
	Logger *slog.Logger
}

// Stats counts the front's requests.
type Stats struct {
	Requests    int64 // forwarded to a generation
	Unavailable int64 // answered 503: no generation ready within Wait
	BadGateway  int64 // answered 502 (or cut): the generation failed them
}

// Front terminates HTTP on the public sockets and forwards each request
// to a routed generation. Create it with New, serve with Serve, stop with
// Shutdown, release with Close.
type Front struct {
	cfg Config
	log *slog.Logger
	dir string

	lns  []net.Listener
	srvs []*http.Server

	routed atomic.Pointer[[]*gen] // the generations that get new requests
	rr     atomic.Uint64          // round robin over routed

	mu    sync.Mutex
	gens  map[int]*gen
	ready chan struct{} // closed while routed is not empty

	closing   chan struct{} // closed by Shutdown: waiting requests get 503
	closeOnce sync.Once
	draining  atomic.Bool // responses say Connection: close
	serveWG   sync.WaitGroup

	requests, unavailable, badGateway atomic.Int64
}

// New checks that every socket is a listening stream socket, makes the
// private directory and returns a Front that has not begun serving.
func New(cfg Config) (*Front, error) {
	if len(cfg.Sockets) == 0 {
		return nil, errors.New("front: no socket")
	}
	for _, sk := range cfg.Sockets {
		if err := checkStream(sk.File); err != nil {
			return nil, &SocketError{Name: sk.Name, Err: err}
		}
	}
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultWait
	}
	if cfg.LameDuck == 0 {
		cfg.LameDuck = DefaultLameDuck
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	dir, err := os.MkdirTemp(cfg.Dir, "baton-front-")
	if err != nil {
		return nil, fmt.Errorf("front: private directory: %w", err)
	}
	f := &Front{
		cfg: cfg, log: log, dir: dir,
		gens:    make(map[int]*gen),
		ready:   make(chan struct{}),
		closing: make(chan struct{}),
	}
	f.routed.Store(&[]*gen{})
	for i, sk := range cfg.Sockets {
		if n := len(privatePath(dir, 1<<30, i)); n >= maxUnixPath {
			f.Close()
			return nil, fmt.Errorf("front: private socket path %s: %d bytes, the limit is %d: set a shorter Dir (TMPDIR)", privatePath(dir, 0, i), n, maxUnixPath-1)
		}
		ln, err := net.FileListener(sk.File)
		if err != nil {
			f.Close()
			return nil, &SocketError{Name: sk.Name, Err: err}
		}
		f.lns = append(f.lns, ln)
		srv := &http.Server{
			Handler:  &handler{f: f, i: i},
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		}
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true) // h2c with prior knowledge
		f.srvs = append(f.srvs, srv)
	}
	return f, nil
}

// Serve serves every public socket until Shutdown or Close and returns
// nil then, or the first error of a socket's server.
func (f *Front) Serve() error {
	errs := make([]error, len(f.srvs))
	for i, srv := range f.srvs {
		f.serveWG.Add(1)
		go func() {
			defer f.serveWG.Done()
			if err := srv.Serve(f.lns[i]); !errors.Is(err, http.ErrServerClosed) {
				errs[i] = fmt.Errorf("front: socket %s: %w", f.cfg.Sockets[i].Name, err)
			}
		}()
	}
	f.serveWG.Wait()
	return errors.Join(errs...)
}

// Shutdown drains the client connections: responses say "Connection:
// close" for LameDuck, requests waiting for a generation get 503 at once,
// then the servers shut down (no new connection; idle ones closed; the
// requests in flight finish). It returns ctx.Err() when ctx ends first.
// The lame duck is the first call's only (and none after Close).
// The generations are left alone: the caller stops them after.
func (f *Front) Shutdown(ctx context.Context) error {
	first := false
	f.closeOnce.Do(func() {
		first = true
		f.draining.Store(true)
		close(f.closing)
	})
	if first && f.cfg.LameDuck > 0 {
		t := time.NewTimer(f.cfg.LameDuck)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	var errs []error
	for _, srv := range f.srvs {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close closes the servers and their connections at once, releases every
// generation's private sockets and removes the private directory. Call it
// after the generations have exited.
func (f *Front) Close() error {
	f.closeOnce.Do(func() {
		f.draining.Store(true)
		close(f.closing)
	})
	var errs []error
	for _, srv := range f.srvs {
		if err := srv.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	f.serveWG.Wait()
	f.mu.Lock()
	gs := make([]*gen, 0, len(f.gens))
	for _, g := range f.gens {
		gs = append(gs, g)
	}
	f.mu.Unlock()
	for _, g := range gs {
		f.Release(g.n)
	}
	if err := os.RemoveAll(f.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Stats returns the counts so far.
func (f *Front) Stats() Stats {
	return Stats{Requests: f.requests.Load(), Unavailable: f.unavailable.Load(), BadGateway: f.badGateway.Load()}
}

// Dir is the private directory of the generations' sockets.
func (f *Front) Dir() string { return f.dir }

// handler serves the requests of public socket i.
type handler struct {
	f *Front
	i int
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := h.f
	g, err := f.acquire(r.Context())
	if err != nil {
		if r.Context().Err() != nil {
			return // the client left
		}
		n := f.unavailable.Add(1)
		f.log.Warn("front: no generation ready: 503", "socket", f.cfg.Sockets[h.i].Name, "method", r.Method, "path", r.URL.Path, "err", err, "count", n)
		w.Header().Set("Retry-After", "1")
		if r.ProtoMajor == 1 {
			w.Header().Set("Connection", "close")
		}
		http.Error(w, "503 service unavailable: no server ready", http.StatusServiceUnavailable)
		return
	}
	defer g.done()
	f.requests.Add(1)
	if r.ProtoMajor == 1 && f.draining.Load() {
		w.Header().Set("Connection", "close")
	}
	g.backs[h.i].proxy.ServeHTTP(w, r)
}

// errNoGeneration is a request that found no routed generation in Wait.
var errNoGeneration = errors.New("no generation ready")

// acquire returns a routed generation with the request counted in flight,
// waiting up to Wait for one.
func (f *Front) acquire(ctx context.Context) (*gen, error) {
	var timer *time.Timer
	for {
		if gs := *f.routed.Load(); len(gs) > 0 {
			g := gs[int(f.rr.Add(1)%uint64(len(gs)))]
			// Counted first, then checked: Quiesce unroutes first, then
			// reads the count, so one of the two sees the other.
			g.inflight.Add(1)
			if g.routedNow.Load() {
				return g, nil
			}
			g.done()
			continue
		}
		f.mu.Lock()
		ready := f.ready
		f.mu.Unlock()
		if len(*f.routed.Load()) > 0 {
			continue
		}
		if timer == nil {
			timer = time.NewTimer(f.cfg.Wait)
			defer timer.Stop()
		}
		select {
		case <-ready:
		case <-timer.C:
			return nil, fmt.Errorf("%w in %s", errNoGeneration, f.cfg.Wait)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-f.closing:
			return nil, fmt.Errorf("%w: shutting down", errNoGeneration)
		}
	}
}
