#!/usr/bin/env python3
"""HTTPS side by side: tidegate and nginx terminating TLS with the same certificate (ECDSA
P-256), one worker each on its own core, proxying to the same nginx upstream. Measures:

  keep-alive HTTP/1.1 over TLS       wrk, 50 connections
  keep-alive HTTP/2 over TLS         h2load, 10 connections x 10 streams
  new TLS 1.3 handshakes per second  openssl s_time -new (full) and -reuse (resumed)

Run by scripts/bench.sh --tls (after the release build), or directly:
  python3 scripts/bench_tls.py [--quick] [--out DIR]
"""
import argparse, json, os, re, subprocess, tempfile, time, shutil, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import (TIDEGATE, BODY, FORWARDED, Target, cpus, free_port, log, nginx_conf, parse_wrk, pin,  # noqa: E402
                   rss_kb)


def make_cert(dir_):
    key, crt = os.path.join(dir_, "bench.key"), os.path.join(dir_, "bench.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=bench.test",
                    "-addext", "subjectAltName=DNS:bench.test"], check=True, capture_output=True)
    return crt, key


def tidegate_tls_conf(dir_, port, upstream, crt, key):
    path = os.path.join(dir_, "tidegate-tls.toml")
    with open(path, "w") as f:
        f.write(f"""[basic]
threads = 1
log_level = "warn"
watch = false

[servers.bench]
addr = "127.0.0.1:{port}"
locations = ["all"]
tls = true
http2 = true

[locations.all]
upstream = "up"

[upstreams.up]
addrs = ["127.0.0.1:{upstream}"]

[certificates.bench]
cert = "{crt}"
key = "{key}"
default = true
""")
    return [TIDEGATE, "-c", path, "--pid-file", os.path.join(dir_, "tidegate-tls.pid")]


def nginx_tls_body(port, upstream, crt, key):
    return f"""
  upstream up {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  keepalive_requests 1000000;
  ssl_session_cache shared:SSL:10m;
  ssl_protocols TLSv1.2 TLSv1.3;
  server {{ listen 127.0.0.1:{port} ssl http2; server_name bench.test;
    ssl_certificate {crt}; ssl_certificate_key {key};
    location / {{ proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; {FORWARDED} }} }}"""


def wrk_tls(port, seconds, cores):
    out = subprocess.run(pin(cores) + ["wrk", "-t1", "-c50", f"-d{seconds}s", "--latency", "--timeout", "5s",
                                       f"https://127.0.0.1:{port}/"], capture_output=True, text=True).stdout
    return parse_wrk(out)


def h2load_tls(port, n, cores):
    out = subprocess.run(pin(cores) + ["h2load", "-n", str(n), "-c", "10", "-m", "10",
                                       f"https://127.0.0.1:{port}/"], capture_output=True, text=True).stdout
    m = re.search(r"finished in .*?, ([\d.]+) req/s", out)
    ok = re.search(r"(\d+) succeeded", out)
    return {"rps": float(m.group(1)) if m else None, "succeeded": int(ok.group(1)) if ok else None}


def s_time(port, seconds, reuse, cores):
    # s_time sends no SNI: both servers answer with their default (only) certificate
    out = subprocess.run(pin(cores) + ["openssl", "s_time", "-connect", f"127.0.0.1:{port}",
                                       "-tls1_3", "-time", str(seconds), "-reuse" if reuse else "-new"],
                         capture_output=True, text=True).stdout
    m = re.search(r"([\d.]+) connections/user sec", out)
    n = re.search(r"(\d+) connections in (\d+) real seconds", out)
    return {"per_real_s": round(int(n.group(1)) / int(n.group(2)), 1) if n and int(n.group(2)) else None,
            "per_user_s": float(m.group(1)) if m else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()
    seconds, rounds = (3, 1) if args.quick else (10, 3)
    cores = cpus()
    client, proxy = cores[:1], (cores[1:2] if len(cores) >= 2 else cores)
    work = tempfile.mkdtemp(prefix="tidegate-bench-tls-")
    started = []
    report = {"settings": {"seconds": seconds, "rounds": rounds}}
    try:
        crt, key = make_cert(work)
        up = free_port()
        upstream = Target("upstream", up, nginx_conf(work, "upstream", 1, f"""
  server {{ listen 127.0.0.1:{up}; keepalive_requests 1000000; location / {{ return 200 "{BODY}"; }} }}"""), client)
        started.append(upstream)
        upstream.start(work)
        pt, pn = free_port(), free_port()
        targets = [
            Target("tidegate", pt, tidegate_tls_conf(work, pt, up, crt, key), proxy, dict(os.environ, TIDEGATE_LOG="warn")),
            Target("nginx", pn, nginx_conf(work, "nginx-tls", 1, nginx_tls_body(pn, up, crt, key)), proxy),
        ]
        for t in targets:
            started.append(t)
            t.start(work)
        time.sleep(0.5)
        res = {t.name: {"h1": [], "h2": [], "new": [], "resumed": []} for t in targets}
        n = 20000 if args.quick else 200000
        for r in range(rounds):
            for t in targets:
                wrk_tls(t.port, 1, client)  # warm-up
                res[t.name]["h1"].append(wrk_tls(t.port, seconds, client)["rps"])
                res[t.name]["h2"].append(h2load_tls(t.port, n, client)["rps"])
                res[t.name]["new"].append(s_time(t.port, seconds, False, client)["per_real_s"])
                res[t.name]["resumed"].append(s_time(t.port, seconds, True, client)["per_real_s"])
                log(f"round {r + 1}/{rounds} {t.name}: h1 {res[t.name]['h1'][-1]:,.0f} req/s, "
                    f"h2 {res[t.name]['h2'][-1]} req/s, new {res[t.name]['new'][-1]}/s, "
                    f"resumed {res[t.name]['resumed'][-1]}/s")
            for t in targets:
                res[t.name].setdefault("rss_kb", []).append(rss_kb(t.proc.pid))
        med = {name: {k: sorted(v)[len(v) // 2] for k, v in d.items() if v and v[0] is not None}
               for name, d in res.items()}
        report["medians"] = med
        report["ratios"] = {k: round(med["tidegate"][k] / med["nginx"][k], 3)
                            for k in ("h1", "h2", "new", "resumed") if med["nginx"].get(k)}
        print(f"## HTTPS, 1 worker each, {rounds} round(s)\n")
        print("| measure | tidegate | nginx | tidegate / nginx |\n| --- | ---: | ---: | ---: |")
        names = {"h1": "keep-alive HTTP/1.1 req/s (wrk -c50)", "h2": "HTTP/2 req/s (h2load -c10 -m10)",
                 "new": "new TLS 1.3 handshakes/s (s_time -new)", "resumed": "resumed handshakes/s (s_time -reuse)",
                 "rss_kb": "RSS after the runs, KB"}
        for k, label in names.items():
            a, b = med["tidegate"].get(k), med["nginx"].get(k)
            ratio = round(a / b, 3) if a and b else None
            print(f"| {label} | {a} | {b} | {ratio} |")
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            with open(os.path.join(args.out, "bench_tls.json"), "w") as f:
                json.dump(report, f, indent=2)
    finally:
        for t in started:
            t.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
