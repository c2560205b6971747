#!/usr/bin/env python3
"""Peak memory of a sellerdesk server held by idle, half-open connections.

    bash -c 'ulimit -n 20000; python3 bench/idle_connections.py target/release/sellerdesk'

Starts the binary on a fresh SQLite file (rate limiting off, any extra settings as NAME=VALUE
arguments), opens COUNT connections (8000) to it: even ones send nothing, odd ones send the
first 1 KiB of a request head and stop. It holds them for HOLD seconds (30), reading the
server's VmRSS and VmHWM from /proc every second, then reports the RSS before, the peak, and
how many connections the server had closed by then. Needs `ulimit -n` above COUNT + 100 for
itself and the server (which inherits it).
"""

import os
import select
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

COUNT = int(os.environ.get("IDLE_COUNT", "8000"))
HOLD = int(os.environ.get("IDLE_HOLD_SECS", "30"))
PORT = int(os.environ.get("IDLE_PORT", "8790"))
PARTIAL = b"GET /health HTTP/1.1\r\nHost: bench\r\nX-Padding: " + b"x" * 980


def memory_kib(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def closed_by_server(sockets):
    """How many of `sockets` the server has closed (readable with EOF, or reset)."""
    poller = select.poll()
    by_fd = {sock.fileno(): sock for sock in sockets}
    for fd in by_fd:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    closed = 0
    for fd, _ in poller.poll(0):
        try:
            if by_fd[fd].recv(4096, socket.MSG_PEEK) == b"":
                closed += 1
        except OSError:
            closed += 1
    return closed


def main():
    binary = sys.argv[1]
    extra = dict(arg.split("=", 1) for arg in sys.argv[2:])
    work = tempfile.mkdtemp()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PORT": str(PORT),
        "DATABASE_URL": f"sqlite://{work}/idle.db",
        "RATE_LIMIT_PER_MINUTE": "0",
        "RUST_LOG": "warn",
        **extra,
    }
    server = subprocess.Popen([binary, "serve"], env=env, cwd=work,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health").read()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    sys.exit("the server did not come up")
                time.sleep(0.05)
        rss_before, _ = memory_kib(server.pid)

        sockets = []
        for i in range(COUNT):
            sock = socket.create_connection(("127.0.0.1", PORT))
            if i % 2:
                sock.sendall(PARTIAL)
            sockets.append(sock)
        opened = time.time()
        peak_rss = 0
        while time.time() - opened < HOLD:
            rss, hwm = memory_kib(server.pid)
            peak_rss = max(peak_rss, rss)
            time.sleep(1)
        rss_end, hwm = memory_kib(server.pid)
        closed = closed_by_server(sockets)
        alive = requests_still_served()
        print(f"settings: {extra or 'defaults'}; {COUNT} connections "
              f"({COUNT // 2} silent, {COUNT - COUNT // 2} with 1 KiB of header), held {HOLD} s")
        print(f"  RSS before: {rss_before / 1024:.1f} MiB; peak RSS while held: {peak_rss / 1024:.1f} MiB; "
              f"VmHWM: {hwm / 1024:.1f} MiB; RSS at the end: {rss_end / 1024:.1f} MiB")
        print(f"  closed by the server within {HOLD} s: {closed} of {COUNT}; "
              f"a new request meanwhile: {alive}")
        for sock in sockets:
            sock.close()
    finally:
        server.terminate()
        server.wait()


def requests_still_served():
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health", timeout=5) as response:
            return f"{response.status}"
    except OSError as e:
        return f"failed ({e.__class__.__name__})"


if __name__ == "__main__":
    main()
