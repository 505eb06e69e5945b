#!/usr/bin/env python3
"""Measure what keep-alive clients see when a proxy hands over to a new process or reloads.

    scripts/reload_races.py nginx            # `nginx -s reload` under load
    scripts/reload_races.py tidegate BINARY  # `tidegate --upgrade` + SIGQUIT under load

Both proxies forward to the same small origin on 127.0.0.1. Two clients send requests back
to back on keep-alive connections, and four more on fresh connections, for 8 seconds; the
hand-over happens after 2 seconds. Printed: requests sent and answered, failures on fresh
connections, and "close races": a request sent on an idle keep-alive connection that the
server closed at the same moment (HTTP clients retry these). A measurement, not a test:
tests/upgrade.rs asserts tidegate's side.
"""

import http.server
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *a):
        pass


def read_response(f):
    """Status line and body of one response; None when the connection closed first."""
    line = f.readline()
    if not line:
        return None
    length, close = 0, False
    while True:
        h = f.readline()
        if h in (b"\r\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        if k.lower() == "content-length":
            length = int(v)
        if k.lower() == "connection" and v.strip().lower() == "close":
            close = True
    f.read(length)
    return line, close


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.sent = self.ok = self.races = self.failures = 0

    def add(self, **kw):
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)


def keepalive_client(port, stop, t):
    conn, used = None, False
    while not stop.is_set():
        if conn is None:
            conn = socket.create_connection(("127.0.0.1", port), timeout=10)
            f, used = conn.makefile("rb"), False
        t.add(sent=1)
        try:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            r = read_response(f)
        except OSError:
            r = None
        if r is None:
            t.add(races=1) if used else t.add(failures=1)
            conn = None
            continue
        t.add(ok=1)
        used = True
        if r[1]:
            conn = None


def fresh_client(port, stop, t):
    while not stop.is_set():
        t.add(sent=1)
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            c.sendall(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            r = read_response(c.makefile("rb"))
            c.close()
            t.add(ok=1) if r else t.add(failures=1)
        except OSError:
            t.add(failures=1)


def nginx(port, origin, d):
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(
            "worker_processes 1; pid %s/nginx.pid; error_log %s/error.log;\n"
            "events {}\nhttp { access_log off; upstream o { server 127.0.0.1:%d; keepalive 16; }\n"
            "server { listen 127.0.0.1:%d; location / { proxy_pass http://o; "
            "proxy_http_version 1.1; proxy_set_header Connection \"\"; } } }\n"
            % (d, d, origin, port)
        )
    subprocess.run(["nginx", "-c", conf, "-p", d], check=True)
    return lambda: subprocess.run(["nginx", "-c", conf, "-p", d, "-s", "reload"], check=True), \
        lambda: subprocess.run(["nginx", "-c", conf, "-p", d, "-s", "quit"])


def tidegate(binary, port, origin, d):
    conf = os.path.join(d, "t.toml")
    with open(conf, "w") as f:
        f.write(
            '[basic]\nthreads = 1\ngrace_period = "1s"\ngraceful_shutdown_timeout = "1s"\n'
            'upgrade_sock = "%s/u.sock"\n[servers.s]\naddr = "127.0.0.1:%d"\nlocations = ["l"]\n'
            '[locations.l]\nupstream = "o"\n[upstreams.o]\naddrs = ["127.0.0.1:%d"]\n'
            % (d, port, origin)
        )
    log = open(os.path.join(d, "log"), "w")
    old = subprocess.Popen([binary, "-c", conf], stdout=log, stderr=log)
    procs = [old]
    time.sleep(1)

    def handover():
        procs.append(subprocess.Popen([binary, "--upgrade", "-c", conf], stdout=log, stderr=log))
        for _ in range(100):
            if os.path.exists(os.path.join(d, "u.sock")):
                break
            time.sleep(0.05)
        old.send_signal(signal.SIGQUIT)

    def stop():
        for p in procs:
            p.kill()

    return handover, stop


def main():
    origin = free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", origin), Origin)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = free_port()
    d = tempfile.mkdtemp()
    if sys.argv[1] == "nginx":
        handover, stop_proxy = nginx(port, origin, d)
    else:
        handover, stop_proxy = tidegate(sys.argv[2], port, origin, d)
    time.sleep(0.5)
    stop = threading.Event()
    kept, fresh = Tally(), Tally()
    threads = [threading.Thread(target=keepalive_client, args=(port, stop, kept)) for _ in range(2)]
    threads += [threading.Thread(target=fresh_client, args=(port, stop, fresh)) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(2)
    handover()
    time.sleep(6)
    stop.set()
    for t in threads:
        t.join()
    stop_proxy()
    print(
        "%s: keep-alive %d sent, %d answered, %d close races, %d failures; "
        "fresh %d sent, %d answered, %d failures"
        % (sys.argv[1], kept.sent, kept.ok, kept.races, kept.failures,
           fresh.sent, fresh.ok, fresh.failures)
    )


if __name__ == "__main__":
    main()
