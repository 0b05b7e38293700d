/* A minimal HTTP/1.0-style server that takes its listening socket from
 * systemd's protocol (sd_listen_fds) and reports readiness with sd_notify:
 * what a C program written for socket activation looks like. Every response
 * closes its connection; SIGTERM stops accepting, finishes the connection in
 * hand and exits. The body is the pid. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_term(int sig) { (void)sig; stop = 1; }

int main(void) {
	int n = sd_listen_fds(1);
	if (n != 1 || sd_is_socket(SD_LISTEN_FDS_START, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
		fprintf(stderr, "child.c: want one listening stream socket, sd_listen_fds=%d\n", n);
		return 3;
	}
	int ln = SD_LISTEN_FDS_START;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sd_notifyf(0, "READY=1\nSTATUS=serving from pid %d", (int)getpid());
	while (!stop) {
		struct pollfd p = {.fd = ln, .events = POLLIN};
		if (poll(&p, 1, 50) <= 0)
			continue;
		int c = accept4(ln, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (c < 0)
			continue;
		/* Read the request head (small requests only). A connection
		 * that sends nothing is closed unanswered, as any server closes
		 * an idle connection: after 5 s, or 2 s once stopping. */
		char buf[4096];
		size_t got = 0;
		int complete = 0;
		buf[0] = 0;
		while (got < sizeof buf - 1) {
			struct pollfd q = {.fd = c, .events = POLLIN};
			int pr = poll(&q, 1, stop ? 2000 : 5000);
			if (pr < 0 && errno == EINTR)
				continue;
			if (pr <= 0)
				break;
			ssize_t r = read(c, buf + got, sizeof buf - 1 - got);
			if (r <= 0)
				break;
			got += (size_t)r;
			buf[got] = 0;
			if (strstr(buf, "\r\n\r\n")) {
				complete = 1;
				break;
			}
		}
		if (!complete) {
			close(c);
			continue;
		}
		char body[32], resp[256];
		int bl = snprintf(body, sizeof body, "%d\n", (int)getpid());
		int rl = snprintf(resp, sizeof resp,
			"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\n"
			"X-Pid: %d\r\nContent-Length: %d\r\n\r\n%s", (int)getpid(), bl, body);
		size_t off = 0;
		while (off < (size_t)rl) {
			ssize_t w = write(c, resp + off, (size_t)rl - off);
			if (w < 0 && errno == EAGAIN) {
				struct pollfd q = {.fd = c, .events = POLLOUT};
				poll(&q, 1, 1000);
				continue;
			}
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		close(c);
	}
	close(ln);
	return 0;
}
