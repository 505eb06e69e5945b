#!/usr/bin/env python3
"""Instructions (and allocations) per proxied request, counted with callgrind.

    scripts/callgrind.py                      # tidegate plain, own loop
    scripts/callgrind.py --variant lua        # plain | lua | access_log | metrics | pingora | nginx | bare_pingora | all
    scripts/callgrind.py --variant h2c        # h2c | nginx_h2c: HTTP/2 (prior knowledge), h2load, 10 streams at a time
    scripts/callgrind.py --variant plugins    # each built-in plugin of PLUGINS below, alone (limit_redis starts a redis-server)
    scripts/callgrind.py --keep DIR           # keep the callgrind.out files (callgrind_annotate)

tidegate (target/release/tidegate, 1 worker) runs under `valgrind --tool=callgrind` twice,
(or, for the references, nginx with the bench's proxy_pass config in one process, or the bare
Pingora forwarder `examples/bare_pingora.rs`)
once for 1,000 and once for 6,000 keep-alive GETs on one connection (the bench's request,
with the Lua check's API key), against a small Python upstream; the difference of the two
totals divided by 5,000 is the cost of one request, without start-up and shutdown. The
allocation count is the number of calls to malloc/realloc/calloc in the same difference.
Figures are counts, not timings: they hold on a noisy machine.
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the same tidegate configs as the benchmark)

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nX-Api-Key: secret\r\n\r\n"


def hs256(claims, secret):
    """A JWT signed with HS256 (the bench's token)."""
    import base64, hashlib, hmac, json
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
    signing = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + b"." + b64(json.dumps(claims).encode())
    return signing + b"." + b64(hmac.new(secret, signing, hashlib.sha256).digest())


JWT_SECRET = b"bench-secret-of-thirty-two-bytes"
# variant: (plugin tables, extra request header lines); each plugin alone on the location, every
# request admitted (the cost of the allowed path)
PLUGINS = {
    "limit": ('[plugins.p]\ncategory = "limit"\nrate = "1000000/s"\n', b""),
    "limit_noheaders": ('[plugins.p]\ncategory = "limit"\nrate = "1000000/s"\nheaders = false\n', b""),
    "limit_inflight": ('[plugins.p]\ncategory = "limit"\nkind = "inflight"\nmax = 100\n', b""),
    "limit_redis": ('[plugins.p]\ncategory = "limit"\nrate = "1000000/s"\nstore = "redis://127.0.0.1:{redis}/0"\n', b""),
    "basic_auth": ('[plugins.p]\ncategory = "basic_auth"\nusers = ["bench:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="]\n',
                   b"Authorization: Basic YmVuY2g6c2VjcmV0\r\n"),
    "key_auth": ('[plugins.p]\ncategory = "key_auth"\nkeys = ["mobile:secret"]\n', b""),
    "jwt": (f'[plugins.p]\ncategory = "jwt"\nalgorithms = ["HS256"]\nsecret = "{JWT_SECRET.decode()}"\n',
            b"Authorization: Bearer " + hs256({"sub": "bench", "exp": 4102444800}, JWT_SECRET) + b"\r\n"),
    "ip_restriction": ('[plugins.p]\ncategory = "ip_restriction"\nallow = ["127.0.0.0/8"]\n', b""),
    # the bench's 23-byte answer is under min_length: the cost of deciding not to compress
    "compression": ('[plugins.p]\ncategory = "compression"\n', b"Accept-Encoding: gzip, br\r\n"),
    "referer_restriction": ('[plugins.p]\ncategory = "referer_restriction"\nallow = ["example.com", "*.example.com"]\n',
                            b"Referer: https://www.example.com/page\r\n"),
    "ua_restriction": ('[plugins.p]\ncategory = "ua_restriction"\ndeny = ["*bot*", "curl/*"]\n',
                       b"User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"),
    "csrf": ('[plugins.p]\ncategory = "csrf"\nkey = "bench-key-of-enough-length"\n', b""),
    # every request after the first is a hit (the upstream's answer stored for ttl)
    "cache": ('[plugins.p]\ncategory = "cache"\nttl = "1h"\n', b""),
    # the key member passes (the first, basic, is tried and refuses)
    "combined_auth": ('[plugins.p]\ncategory = "combined_auth"\nplugins = ["b", "k"]\n'
                      '[plugins.b]\ncategory = "basic_auth"\nusers = ["bench:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="]\n'
                      '[plugins.k]\ncategory = "key_auth"\nkeys = ["secret"]\n', b""),
    # the auth service is the bench's upstream (it answers 200): one subrequest per request
    "forward_auth": ('[plugins.p]\ncategory = "forward_auth"\nurl = "http://127.0.0.1:{upstream}/auth"\n', b""),
    "cors": ('[plugins.p]\ncategory = "cors"\nallow_origins = ["https://app.example.com", "*.example.org"]\n',
             b"Origin: https://app.example.com\r\n"),
}
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 23\r\n\r\n" + bench.BODY.encode()


def upstream():
    """A keep-alive HTTP/1.1 upstream answering every request with the bench body."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)

    def conn(c):
        buf = b""
        while True:
            data = c.recv(65536)
            if not data:
                return
            buf += data
            while b"\r\n\r\n" in buf:
                _, buf = buf.split(b"\r\n\r\n", 1)
                c.sendall(ANSWER)

    def accept():
        while True:
            c, _ = srv.accept()
            threading.Thread(target=conn, args=(c,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return srv.getsockname()[1]


def client(port, n, request=REQUEST):
    """n keep-alive GETs on one connection, each answered before the next is sent."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    for _ in range(n):
        s.sendall(request)
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(65536)
        head, body = got.split(b"\r\n\r\n", 1)
        m = re.search(rb"(?i)content-length:\s*(\d+)", head)
        want = int(m.group(1)) if m else 0
        while len(body) < want:
            body += s.recv(65536)
    s.close()


def h2_client(port, n):
    """n GETs over one h2c connection, 10 streams at a time (h2load)."""
    out = subprocess.run(["h2load", "-n", str(n), "-c", "1", "-m", "10", "-H", "x-api-key: secret",
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=600).stdout
    m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out)
    if not m or int(m.group(1)) != n:
        raise SystemExit(f"h2load: not all {n} requests succeeded:\n{out[-1500:]}")


def redis_server(dir_):
    """A redis-server on a free port for the Redis-backed limit (killed at exit)."""
    import atexit
    port = bench.free_port()
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", dir_], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    atexit.register(p.kill)
    if not bench.wait_port(port, limit=20):
        raise SystemExit("redis-server did not start (scripts/setup.sh redis-server)")
    return port


def run(dir_, variant, up, n, redis=None):
    port = bench.free_port()
    request = REQUEST
    if variant in ("nginx", "nginx_h2c"):
        h2 = " http2" if variant == "nginx_h2c" else ""
        # the bench's nginx target in one process (no master), dumped on demand below: it
        # does not exit on a signal under valgrind
        cmd = bench.nginx_conf(dir_, f"cg-nginx-{n}", 1, f"""
  upstream up {{ server 127.0.0.1:{up}; keepalive 64; }}
  keepalive_requests 100000;
  server {{ listen 127.0.0.1:{port}{h2}; location / {{ proxy_pass http://up; proxy_http_version 1.1;
    proxy_set_header Connection ""; {bench.FORWARDED} }} }}""")
        with open(cmd[2]) as f:
            conf = f.read()
        with open(cmd[2], "w") as f:
            f.write("master_process off;\n" + conf)
    elif variant == "bare_pingora":
        cmd = [bench.PINGORA, f"127.0.0.1:{port}", f"127.0.0.1:{up}", "1"]
    elif variant in PLUGINS:
        tables, extra = PLUGINS[variant]
        request = REQUEST[:-2] + extra + b"\r\n"
        cmd = bench.tidegate_conf(dir_, f"cg-{variant}-{n}", port, up, 1,
                                  plugins=(["p"], tables.replace("{redis}", str(redis)).replace("{upstream}", str(up))))
    else:
        kw = {"lua": variant == "lua", "access_log": variant == "access_log", "metrics": variant == "metrics",
              "engine": "pingora" if variant == "pingora" else None, "http2": variant == "h2c"}
        cmd = bench.tidegate_conf(dir_, f"cg-{variant}-{n}", port, up, 1, **kw)
    out = os.path.join(dir_, f"callgrind.out.{variant}.{n}")
    vg = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    proc = subprocess.Popen(vg + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not bench.wait_port(port, limit=120):
            raise SystemExit(f"{variant} under valgrind did not listen: {proc.stderr.read().decode()[-2000:]}")
        if variant.endswith("h2c"):
            h2_client(port, n)
        else:
            client(port, n, request)
        if variant.startswith("nginx"):
            # the counts so far, written as `out.1`; then the process is killed
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True, timeout=120)
            deadline = time.time() + 60
            while not os.path.exists(out + ".1") and time.time() < deadline:
                time.sleep(0.2)
            proc.kill()
            proc.wait(timeout=60)
            return totals(out + ".1")
    finally:
        if proc.poll() is None:
            proc.send_signal(2)  # SIGINT: fast shutdown; callgrind writes its file on exit
            proc.wait(timeout=120)
    return totals(out)


def totals(path):
    """(instructions, allocation calls) in one callgrind output file."""
    ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", path],
                         capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"^([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", ann, re.M).group(1).replace(",", ""))
    allocs = 0
    with open(path) as f:
        text = f.read()
    # calls=N lines that follow a cfn= naming an allocator entry point
    names = {}
    for m in re.finditer(r"^c?fn=\((\d+)\)(?: (.*))?$", text, re.M):
        if m.group(2):
            names[m.group(1)] = m.group(2)
    current = None
    for line in text.splitlines():
        if line.startswith("cfn=("):
            ident = line[5:line.index(")")]
            current = names.get(ident, "")
        elif line.startswith("calls=") and current is not None:
            if current in ("malloc", "realloc", "calloc"):
                allocs += int(line[6:].split()[0])
            current = None
    return total, allocs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="plain")
    ap.add_argument("--keep", help="directory to keep the callgrind files in")
    a = ap.parse_args()
    if not os.path.exists(bench.TIDEGATE):
        raise SystemExit("build first: cargo build --release")
    every = ["plain", "lua", "access_log", "metrics", "pingora", "nginx", "bare_pingora"]
    variants = every if a.variant == "all" else list(PLUGINS) if a.variant == "plugins" else [a.variant]
    dir_ = a.keep or tempfile.mkdtemp(prefix="tidegate-cg-")
    os.makedirs(dir_, exist_ok=True)
    up = upstream()
    redis = redis_server(dir_) if "limit_redis" in variants else None
    for v in variants:
        t0 = time.time()
        (i1, a1), (i2, a2) = run(dir_, v, up, 1000, redis), run(dir_, v, up, 6000, redis)
        print(f"{v:<11} {(i2 - i1) / 5000:>10,.0f} instructions/request"
              f"  {(a2 - a1) / 5000:>6.1f} allocations/request  ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
