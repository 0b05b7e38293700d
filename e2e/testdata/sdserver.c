/*
 * sdserver.c: the e2e tests' plain HTTP/1.1 server in C with libsystemd, as
 * a user writes one: it takes its listening socket from sd_listen_fds (the
 * one named "http", else the first), reports READY=1 and STOPPING=1 with
 * sd_notify, and on SIGTERM drains without dropping a request: it stops
 * accepting, answers every further request with "Connection: close", closes
 * connections left idle after a lame-duck period, and exits when none is
 * left.
 *
 * GET answers 200 with the header X-Pid.
 * Build: gcc -O2 -Wall -o sdserver sdserver.c -lsystemd
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#define MAXCONN 256
#define BUFSZ 8192
#define LAME_DUCK_MS 1000
#define DRAIN_MAX_MS 10000

struct conn {
	int fd;
	size_t len;
	char buf[BUFSZ];
};

static struct conn conns[MAXCONN];
static int nconns;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int listener(void)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names);
	int fd = -1;
	if (n <= 0) {
		fprintf(stderr, "sdserver.c: no sockets from sd_listen_fds: %s\n", n < 0 ? strerror(-n) : "none");
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (fd < 0 && names && names[i] && strcmp(names[i], "http") == 0)
			fd = SD_LISTEN_FDS_START + i;
	}
	if (fd < 0)
		fd = SD_LISTEN_FDS_START;
	if (names) {
		for (int i = 0; i < n; i++)
			free(names[i]);
		free(names);
	}
	if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
		fprintf(stderr, "sdserver.c: fd %d is not a listening stream socket\n", fd);
		return -1;
	}
	return fd;
}

static void drop(int i)
{
	close(conns[i].fd);
	conns[i] = conns[--nconns];
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* serve answers every complete request in c's buffer; it returns -1 when
 * the connection must be closed. */
static int serve(struct conn *c, int draining)
{
	char *end;
	while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) != NULL) {
		size_t reqlen = (size_t)(end - c->buf) + 4;
		int close_after = draining || memmem(c->buf, reqlen, "Connection: close", 17) != NULL;
		char body[64], resp[256];
		int bl = snprintf(body, sizeof body, "pid %d\n", getpid());
		int rl = snprintf(resp, sizeof resp,
				  "HTTP/1.1 200 OK\r\nX-Pid: %d\r\nContent-Type: text/plain\r\n"
				  "Content-Length: %d\r\n%s\r\n%s",
				  getpid(), bl, close_after ? "Connection: close\r\n" : "", body);
		if (write_all(c->fd, resp, (size_t)rl) < 0)
			return -1;
		memmove(c->buf, c->buf + reqlen, c->len - reqlen);
		c->len -= reqlen;
		if (close_after)
			return -1;
	}
	if (c->len == BUFSZ)
		return -1;
	return 0;
}

int main(void)
{
	int lfd = listener();
	if (lfd < 0)
		return 1;
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		perror("sdserver.c: signalfd");
		return 1;
	}
	sd_notifyf(0, "READY=1\nSTATUS=serving as pid %d", getpid());
	printf("sdserver.c: serving as pid %d\n", getpid());
	fflush(stdout);

	int draining = 0;
	long long drain_start = 0;
	struct pollfd pfds[MAXCONN + 2];
	for (;;) {
		if (draining) {
			long long waited = now_ms() - drain_start;
			if (nconns == 0 || waited > DRAIN_MAX_MS)
				break;
			if (waited > LAME_DUCK_MS) {
				/* Close connections with no request in progress. */
				for (int i = nconns - 1; i >= 0; i--)
					if (conns[i].len == 0)
						drop(i);
				if (nconns == 0)
					break;
			}
		}
		int np = 0;
		pfds[np++] = (struct pollfd){.fd = sfd, .events = POLLIN};
		if (!draining)
			pfds[np++] = (struct pollfd){.fd = lfd, .events = nconns < MAXCONN ? POLLIN : 0};
		int first = np;
		for (int i = 0; i < nconns; i++)
			pfds[np++] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
		int r = poll(pfds, (nfds_t)np, draining ? 50 : -1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			perror("sdserver.c: poll");
			return 1;
		}
		if (pfds[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof si) == sizeof si && !draining) {
				sd_notify(0, "STOPPING=1");
				draining = 1;
				drain_start = now_ms();
				/* Our copy only: systemd or a successor keeps the socket. */
				close(lfd);
			}
		}
		/* Handle connections before accepting: indices shift on drop. */
		for (int i = nconns - 1; i >= 0; i--) {
			short ev = pfds[first + i].revents;
			if (!ev)
				continue;
			struct conn *c = &conns[i];
			ssize_t n = read(c->fd, c->buf + c->len, BUFSZ - c->len);
			if (n <= 0) {
				if (n < 0 && errno == EINTR)
					continue;
				drop(i);
				continue;
			}
			c->len += (size_t)n;
			if (serve(c, draining) < 0)
				drop(i);
		}
		if (!draining && first == 2 && (pfds[1].revents & POLLIN)) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0) {
				conns[nconns].fd = fd;
				conns[nconns].len = 0;
				nconns++;
			}
		}
	}
	printf("sdserver.c: pid %d stopped\n", getpid());
	return 0;
}
