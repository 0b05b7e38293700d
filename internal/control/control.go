package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"github.com/batonhq/baton/internal/accept"
)

// Codes carried in a Reply; each maps to a sentinel error.
const (
	CodeInProgress = "in-progress"
	CodeDenied     = "permission-denied"
	CodeFailed     = "failed"
	CodeBadRequest = "bad-request"
	CodeStopping   = "stopping"
	CodeRolledBack = "rolled-back"
)

var (
	// ErrInProgress means another upgrade is already running.
	ErrInProgress = errors.New("upgrade already in progress")
	// ErrDenied means the caller's uid may not control the process.
	ErrDenied = errors.New("permission denied")
	// ErrFailed means the upgrade was attempted and failed; the old
	// generation keeps serving.
	ErrFailed = errors.New("upgrade failed")
	// ErrNoServer means no baton process listens for that pid.
	ErrNoServer = errors.New("no baton control socket")
	// ErrStopping means the upgrade was abandoned, or not started, because
	// the process is stopping (SIGTERM, Stop): the stop superseded the
	// reload and nothing failed.
	ErrStopping = errors.New("generation stopping")
	// ErrRolledBack means the new generation took over but exited within
	// its watch window, and the old one serves again. It wraps ErrFailed:
	// for the caller the upgrade failed.
	ErrRolledBack = fmt.Errorf("%w: rolled back in the watch window", ErrFailed)
	// ErrNoReply means the server closed the connection without a reply:
	// the process exited (or closed its control socket) while the request
	// was in flight.
	ErrNoReply = errors.New("connection closed without a reply")
)

// prefix begins the abstract name of every control socket; the rest is
// random (128 bits from getrandom(2)), so nobody can bind it in advance, and a
// client finds it among the sockets the process holds (find).
const prefix = "@baton/control/"

// ErrAlreadyOpen means this process has a control server open already: a
// client finds a process's server among its sockets, so there is one.
var ErrAlreadyOpen = errors.New("a control socket of this process is open already")

// open is whether a Server of this process is open.
var open struct {
	sync.Mutex
	yes bool
}

// NamespaceError is a process whose control socket is in another network
// namespace than the caller's (abstract unix sockets belong to one), which
// the caller could not enter (only root can).
type NamespaceError struct {
	PID   int
	NetNS string // the namespace, as its /proc/PID/ns/net link reads ("net:[4026532301]")
	Err   error  // why entering it failed
}

func (e *NamespaceError) Error() string {
	return fmt.Sprintf("pid %d: its control socket is in network namespace %s, not ours: enter it: %v", e.PID, e.NetNS, e.Err)
}

func (e *NamespaceError) Unwrap() error { return e.Err }

// StrangerError is a control socket answered by another process than the
// one asked: something bound the name first.
type StrangerError struct {
	PID  int    // the process asked
	Peer int    // the process that answers (0: in a pid namespace we cannot see)
	UID  uint32 // its uid
}

func (e *StrangerError) Error() string {
	return fmt.Sprintf("pid %d: its control socket is held by another process (pid %d, uid %d): not asking it", e.PID, e.Peer, e.UID)
}

// Request is what a client sends.
type Request struct {
	Op string `json:"op"` // "reload" or "status"
	// WaitWindow asks a "reload" to be answered when the new generation's
	// watch window ends (success, or CodeRolledBack), not at the
	// cut-over. A server without watch windows answers at the cut-over,
	// as it does for the request without it; one that does not know the
	// field ignores it.
	WaitWindow bool `json:"wait_window,omitempty"`
}

type requestKey struct{}

// RequestOf returns the request a Handler is called for (from its ctx), or
// the zero Request.
func RequestOf(ctx context.Context) Request {
	r, _ := ctx.Value(requestKey{}).(Request)
	return r
}

// Reply is what the server answers.
type Reply struct {
	PID     int             `json:"pid,omitempty"`     // the process serving now, on success
	Code    string          `json:"code,omitempty"`    // empty on success
	Message string          `json:"message,omitempty"` // the reason, on failure
	Status  json.RawMessage `json:"status,omitempty"`  // the answer to "status"
}

// StatusFunc answers a "status" request with a value encoded as JSON.
type StatusFunc func(ctx context.Context) any

// Error is a failed request as the client sees it.
type Error struct {
	PID     int    // the process asked
	Code    string // one of the Code constants
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("reload of pid %d: %s", e.PID, e.Code)
	}
	return fmt.Sprintf("reload of pid %d: %s", e.PID, e.Message)
}

// Unwrap returns the sentinel of the code.
func (e *Error) Unwrap() error {
	switch e.Code {
	case CodeInProgress:
		return ErrInProgress
	case CodeDenied:
		return ErrDenied
	case CodeFailed:
		return ErrFailed
	case CodeStopping:
		return ErrStopping
	case CodeRolledBack:
		return ErrRolledBack
	}
	return nil
}

// Handler performs an upgrade and returns the pid now serving. An error that
// matches ErrInProgress, ErrStopping or ErrRolledBack is reported with that
// code; any other error as CodeFailed with its text. RequestOf(ctx) is the
// request.
type Handler func(ctx context.Context) (pid int, err error)

// Server accepts control connections for one process.
type Server struct {
	ln      *net.UnixListener
	handler Handler
	status  StatusFunc
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Listen opens the server of the calling process and serves it until Close.
// Its abstract name is random: clients find it among the process's own
// sockets. It fails (ErrAlreadyOpen) while a server of this process is
// open. It answers "status" requests with CodeBadRequest; ListenStatus
// answers them.
func Listen(handler Handler) (*Server, error) { return ListenStatus(handler, nil) }

// ListenStatus is Listen with status answering "status" requests.
func ListenStatus(handler Handler, status StatusFunc) (*Server, error) {
	open.Lock()
	defer open.Unlock()
	if open.yes {
		return nil, fmt.Errorf("control socket: %w", ErrAlreadyOpen)
	}
	ln, err := listen()
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	open.yes = true
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{ln: ln, handler: handler, status: status, ctx: ctx, cancel: cancel}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Close stops accepting, cancels the context of running handlers and waits
// for them to return.
func (s *Server) Close() error {
	err := s.close()
	s.cancel()
	s.wg.Wait()
	return err
}

// close closes the listener, once; the process may open another server.
func (s *Server) close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.ln.Close()
		open.Lock()
		open.yes = false
		open.Unlock()
	})
	return s.closeErr
}

// Shutdown stops accepting requests and waits until those in flight are
// answered; when ctx ends first it is Close and returns ctx.Err(). A process
// that must answer the request that ends it (a successful reload) uses
// Shutdown, not Close.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.close()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return err
	case <-ctx.Done():
		s.cancel()
		<-done
		return ctx.Err()
	}
}

func (s *Server) serve() {
	defer s.wg.Done()
	var b accept.Backoff
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if retry, _ := b.Wait(err); retry && s.ctx.Err() == nil {
				continue // out of fds: the request waits in the backlog
			}
			return // closed
		}
		b.Reset()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.handle(c)
		}()
	}
}

func (s *Server) handle(c *net.UnixConn) {
	enc := json.NewEncoder(c)
	if err := allowed(c); err != nil {
		_ = enc.Encode(Reply{Code: CodeDenied, Message: err.Error()})
		return
	}
	// Stop reading when the server closes, so a silent client cannot hold Close.
	stop := context.AfterFunc(s.ctx, func() { _ = c.Close() })
	defer stop()
	var req Request
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	if err == nil && req.Op == "status" && s.status != nil {
		b, err := json.Marshal(s.status(s.ctx))
		if err != nil {
			_ = enc.Encode(Reply{Code: CodeFailed, Message: "status: " + err.Error()})
			return
		}
		_ = enc.Encode(Reply{PID: os.Getpid(), Status: b})
		return
	}
	if err != nil || req.Op != "reload" {
		_ = enc.Encode(Reply{Code: CodeBadRequest, Message: fmt.Sprintf("unknown request %q", line)})
		return
	}
	pid, err := s.handler(context.WithValue(s.ctx, requestKey{}, req))
	switch {
	case err == nil:
		_ = enc.Encode(Reply{PID: pid})
	case errors.Is(err, ErrInProgress):
		_ = enc.Encode(Reply{Code: CodeInProgress, Message: err.Error()})
	case errors.Is(err, ErrStopping):
		_ = enc.Encode(Reply{Code: CodeStopping, Message: err.Error()})
	case errors.Is(err, ErrRolledBack):
		_ = enc.Encode(Reply{Code: CodeRolledBack, Message: err.Error()})
	default:
		_ = enc.Encode(Reply{Code: CodeFailed, Message: err.Error()})
	}
}

// Status asks the baton process pid for its status (ListenStatus) and
// returns it as the JSON the process sent. Errors are as for Reload.
func Status(ctx context.Context, pid int) (json.RawMessage, error) {
	r, err := ask(ctx, pid, Request{Op: "status"})
	if err != nil {
		return nil, err
	}
	return r.Status, nil
}

// Reload asks the baton process pid to upgrade and waits for the outcome or
// ctx. It returns the pid serving after the upgrade. A refused or failed
// request is an *Error; a server that closes the connection without a
// reply (it exited) is an error wrapping ErrNoReply. A socket held by
// another process than pid is a *StrangerError, and nothing is sent to it.
func Reload(ctx context.Context, pid int) (int, error) {
	return ReloadWith(ctx, pid, ReloadOptions{})
}

// ReloadOptions are the options of ReloadWith; the zero value is Reload's.
type ReloadOptions struct {
	// WaitWindow waits for the end of the new generation's watch window:
	// a rollback in it is an *Error wrapping ErrRolledBack.
	WaitWindow bool
}

// ReloadWith is Reload with options.
func ReloadWith(ctx context.Context, pid int, opts ReloadOptions) (int, error) {
	r, err := ask(ctx, pid, Request{Op: "reload", WaitWindow: opts.WaitWindow})
	if err != nil {
		return 0, err
	}
	return r.PID, nil
}

// ask sends one request to pid's server and returns its successful reply.
func ask(ctx context.Context, pid int, req Request) (*Reply, error) {
	c, err := dial(ctx, pid)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := answeredBy(c, pid); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	// A server that refuses the caller replies and closes before reading the
	// request, so a failed send still leaves that reply to read.
	sendErr := json.NewEncoder(c).Encode(req)
	var r Reply
	if err := json.NewDecoder(c).Decode(&r); err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("pid %d: no outcome: %w", pid, ctx.Err())
		case sendErr != nil:
			return nil, fmt.Errorf("pid %d: send request: %w: %w", pid, ErrNoReply, sendErr)
		}
		return nil, fmt.Errorf("pid %d: read reply: %w: %w", pid, ErrNoReply, err)
	}
	if r.Code != "" {
		return nil, &Error{PID: pid, Code: r.Code, Message: r.Message}
	}
	return &r, nil
}
