package notifyrecv

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

const msgTrunc = unix.MSG_TRUNC

// Room for the credentials and the largest batch of fds one message carries.
var oobSize = unix.CmsgSpace(unix.SizeofUcred) + unix.CmsgSpace(253*4)

func passCred(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("SO_PASSCRED: %w", serr)
	}
	return nil
}

// parseOOB fills the sender's credentials and closes any passed fds.
func parseOOB(oob []byte, m *Message) error {
	if len(oob) == 0 {
		return nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return fmt.Errorf("notify message control data: %w", err)
	}
	for _, cm := range msgs {
		if cm.Header.Level != unix.SOL_SOCKET {
			continue
		}
		switch cm.Header.Type {
		case unix.SCM_CREDENTIALS:
			if cred, err := unix.ParseUnixCredentials(&cm); err == nil {
				m.PID, m.UID = int(cred.Pid), int(cred.Uid)
			}
		case unix.SCM_RIGHTS:
			if fds, err := unix.ParseUnixRights(&cm); err == nil {
				for _, fd := range fds {
					_ = unix.Close(fd)
				}
			}
		}
	}
	return nil
}
