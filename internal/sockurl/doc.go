// Package sockurl parses the socket addresses users write on baton's command
// line and in unit specs: tcp://HOST:PORT, tcp4://, tcp6://, udp://HOST:PORT
// (udp4, udp6), and unix:/abs/path for a unix stream socket (unix:@name for
// an abstract one). Each parses into the network and address that net.Listen
// and net.ListenPacket take.
//
// Traps:
//   - A TCP or UDP address needs an explicit port (1-65535); port 0 is refused
//     because a socket unit cannot express it and a successor could not find it.
//   - unix paths must be absolute and fit in sockaddr_un (107 bytes).
package sockurl
