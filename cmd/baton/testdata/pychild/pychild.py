#!/usr/bin/env python3
"""An HTTP server as a Python user writes it without libraries: its socket
from LISTEN_FDS (fd 3, for this pid only), readiness as READY=1 on
NOTIFY_SOCKET, and a drain on SIGTERM (stop accepting, answer with
Connection: close, exit once the connections it took are done). The body
and X-Pid are its pid."""

import os
import selectors
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler


def notify(state):
    addr = os.environ.get("NOTIFY_SOCKET", "")
    if not addr:
        return
    if addr[0] == "@":
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        s.send(state.encode())


def main():
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
        sys.exit("pychild: want one socket passed to this pid")
    for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(k, None)
    listener = socket.socket(fileno=3)
    listener.setblocking(False)  # other workers accept on it too
    pid = str(os.getpid())
    lame = threading.Event()
    lock = threading.Lock()
    active = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = (pid + "\n").encode()
            self.send_response(200)
            self.send_header("X-Pid", pid)
            self.send_header("Content-Length", str(len(body)))
            if lame.is_set():
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    def serve(conn, addr):
        try:
            conn.setblocking(True)
            Handler(conn, addr, None)
        except OSError:
            pass
        finally:
            conn.close()
            with lock:
                active[0] -= 1

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    notify("READY=1\nSTATUS=serving from " + pid)
    while not stop.is_set():
        if not sel.select(0.02):
            continue
        try:
            conn, addr = listener.accept()
        except (BlockingIOError, InterruptedError):
            continue
        with lock:
            active[0] += 1
        threading.Thread(target=serve, args=(conn, addr), daemon=True).start()
    listener.close()
    lame.set()
    # Every connection ends after its next response (Connection: close);
    # exit once they all have, or after 5s.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with lock:
            if active[0] == 0:
                break
        time.sleep(0.01)


main()
