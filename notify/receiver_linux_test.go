package notify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// receiver is a manager's notify socket in miniature: a unixgram socket
// with SO_PASSCRED, read with recvmsg, so that each datagram comes with the
// sender's credentials and any fds, as PID 1 gets them.
type receiver struct {
	t      testing.TB
	conn   *net.UnixConn
	socket string // NOTIFY_SOCKET form: "/path" or "@name"
}

// message is one datagram as received.
type message struct {
	data  string
	pid   int32 // from SCM_CREDENTIALS
	uid   uint32
	files []*os.File // from SCM_RIGHTS, closed at the end of the test
}

var abstractSeq atomic.Int64

// newReceiver binds a receiver in t.TempDir(), or under a fresh abstract
// name when abstract is set, and closes it at the end of the test.
func newReceiver(t testing.TB, abstract bool) *receiver {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "notify")
	if abstract {
		socket = fmt.Sprintf("@baton-notify-test-%d-%d", os.Getpid(), abstractSeq.Add(1))
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	r := &receiver{t: t, conn: conn, socket: socket}
	t.Cleanup(func() { _ = conn.Close() })
	return r
}

// recv reads one datagram, failing the test after 10 s without one, on a
// truncated datagram or truncated control data, or when the credentials
// are missing.
func (r *receiver) recv() message {
	r.t.Helper()
	m, err := r.tryRecv(10 * time.Second)
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

func (r *receiver) tryRecv(wait time.Duration) (message, error) {
	buf := make([]byte, MaxMessageSize+1)
	oob := make([]byte, unix.CmsgSpace(MaxFDsPerMessage*4)+unix.CmsgSpace(unix.SizeofUcred))
	if err := r.conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return message{}, err
	}
	n, oobn, flags, _, err := r.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return message{}, err
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		return message{}, fmt.Errorf("datagram truncated (flags %#x)", flags)
	}
	cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return message{}, err
	}
	m := message{data: string(buf[:n]), pid: -1}
	for _, cm := range cmsgs {
		if cred, err := unix.ParseUnixCredentials(&cm); err == nil {
			m.pid, m.uid = cred.Pid, cred.Uid
			continue
		}
		fds, err := unix.ParseUnixRights(&cm)
		if err != nil {
			return message{}, err
		}
		for _, fd := range fds {
			f := os.NewFile(uintptr(fd), "received-"+strconv.Itoa(fd))
			m.files = append(m.files, f)
			r.t.Cleanup(func() { _ = f.Close() })
		}
	}
	if m.pid == -1 {
		return message{}, errors.New("no SCM_CREDENTIALS")
	}
	return m, nil
}

// expectNothing checks that no datagram is waiting.
func (r *receiver) expectNothing() {
	r.t.Helper()
	if m, err := r.tryRecv(50 * time.Millisecond); err == nil {
		r.t.Fatalf("unexpected datagram %q", m.data)
	}
}

// closeFiles closes what a message carried.
func (m message) closeFiles() {
	for _, f := range m.files {
		_ = f.Close()
	}
}
