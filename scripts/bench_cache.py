#!/usr/bin/env python3
"""Cache hits: tidegate's `cache` plugin against nginx's `proxy_cache`, in one run.

    scripts/bench_cache.py [--rounds 3] [--seconds 5] [--out FILE]

Both sit in front of the same upstream (an nginx answering a 1 KiB body with
`Cache-Control: max-age=3600`), 1 worker each, pinned to the second core while wrk (and the
upstream) run on the first, as scripts/bench.py does. The URL is fetched once first, so every
measured request is a hit (the script checks the upstream saw one request per proxy). Medians
of the rounds, req/s, and the ratio tidegate/nginx, for a memory store and for tidegate's
disk store against nginx's (always on disk, with the page cache). Needs
target/release/tidegate.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

BODY = "x" * 1024


def fetch(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.headers.get("x-cache-status") or r.headers.get("x-cache")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--out")
    a = ap.parse_args()
    if not os.path.exists(bench.TIDEGATE):
        raise SystemExit("build first: cargo build --release")
    work = tempfile.mkdtemp(prefix="tidegate-cache-")
    os.chmod(work, 0o755)
    cores = bench.cpus()
    wrk_cores, proxy_cores = cores[:1], cores[1:2] if len(cores) > 1 else cores
    up_port = bench.free_port()
    upstream = bench.Target("upstream", up_port, bench.nginx_conf(work, "upstream", 1, f"""
  server {{ listen 127.0.0.1:{up_port}; access_log {work}/upstream.access;
    location / {{ add_header Cache-Control "max-age=3600"; return 200 "{BODY}"; }} }}"""), wrk_cores)
    env = dict(os.environ, TIDEGATE_LOG="warn")
    targets = []
    for store in ("memory", "disk"):
        tp = bench.free_port()
        conf = os.path.join(work, f"tidegate-{store}.toml")
        storage = "memory" if store == "memory" else f"disk:{work}/tidegate-cache"
        with open(conf, "w") as f:
            f.write(f'[basic]\nthreads = 1\nlog_level = "warn"\nwatch = false\n\n[servers.s]\n'
                    f'addr = "127.0.0.1:{tp}"\nlocations = ["all"]\n\n[locations.all]\nupstream = "up"\n'
                    f'plugins = ["edge"]\n\n[upstreams.up]\naddrs = ["127.0.0.1:{up_port}"]\n\n'
                    f'[plugins.edge]\ncategory = "cache"\nstorage = "{storage}"\n')
        targets.append(bench.Target(f"tidegate_{store}", tp,
                                    [bench.TIDEGATE, "-c", conf, "--pid-file", os.path.join(work, f"{store}.pid")],
                                    proxy_cores, env))
    np_ = bench.free_port()
    targets.append(bench.Target("nginx", np_, bench.nginx_conf(work, "nginx", 1, f"""
  proxy_cache_path {work}/nginx-cache levels=1:2 keys_zone=edge:10m max_size=256m;
  upstream up {{ server 127.0.0.1:{up_port}; keepalive 64; }}
  server {{ listen 127.0.0.1:{np_};
    location / {{ proxy_cache edge; proxy_pass http://up; proxy_http_version 1.1;
      proxy_set_header Connection ""; add_header X-Cache $upstream_cache_status; }} }}"""), proxy_cores))
    report = {"settings": vars(a), "rps": {}, "ratio": {}}
    try:
        upstream.start(work)
        for t in targets:
            t.start(work)
            first = fetch(t.port, "/page")
            again = fetch(t.port, "/page")
            if again != "HIT":
                raise SystemExit(f"{t.name}: the second fetch was {again!r} (first {first!r}), not a hit")
        runs = {t.name: [] for t in targets}
        for r in range(a.rounds):
            for t in targets if r % 2 == 0 else list(reversed(targets)):
                bench.run_wrk(t, 1, a.connections, wrk_cores, "/page")
                res = bench.run_wrk(t, a.seconds, a.connections, wrk_cores, "/page")
                if res["non_2xx"] or res["socket_errors"]:
                    raise SystemExit(f"{t.name}: {res['non_2xx']} non-2xx, {res['socket_errors']}")
                runs[t.name].append(res["rps"])
                bench.log(f"round {r + 1}: {t.name} {res['rps']:,.0f} req/s")
        with open(f"{work}/upstream.access") as f:
            upstream_requests = sum(1 for _ in f)
        if upstream_requests != len(targets):
            raise SystemExit(f"the upstream saw {upstream_requests} requests, not one per proxy")
        med = {k: statistics.median(v) for k, v in runs.items()}
        report["rps"] = med
        report["ratio"] = {
            "memory_vs_nginx": med["tidegate_memory"] / med["nginx"],
            "disk_vs_nginx": med["tidegate_disk"] / med["nginx"],
        }
    finally:
        for t in targets + [upstream]:
            t.stop()
    print("| target | req/s (cache hits, 1 KiB) |")
    print("| --- | ---: |")
    for k, v in report["rps"].items():
        print(f"| {k} | {v:,.0f} |")
    print(f"\ntidegate memory / nginx: {report['ratio']['memory_vs_nginx']:.2f}; "
          f"tidegate disk / nginx: {report['ratio']['disk_vs_nginx']:.2f}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
