#!/usr/bin/env python3
"""Static files: tidegate's `directory` plugin against nginx serving the same root.

    scripts/bench_static.py [--rounds 3] [--seconds 5] [--out FILE]

Both serve a 1 KiB and a 1 MiB file from one temp directory, 1 worker each, pinned to the
second core while wrk runs on the first (as scripts/bench.py does); medians of the rounds,
req/s and MiB/s, and the ratio tidegate/nginx per file. Needs target/release/tidegate.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--out")
    a = ap.parse_args()
    if not os.path.exists(bench.TIDEGATE):
        raise SystemExit("build first: cargo build --release")
    work = tempfile.mkdtemp(prefix="tidegate-static-")
    root = os.path.join(work, "www")
    os.makedirs(root)
    files = {"1KiB": 1 << 10, "1MiB": 1 << 20}
    for name, size in files.items():
        with open(os.path.join(root, f"{name}.bin"), "wb") as f:
            f.write(bytes(i % 251 for i in range(size)))
        os.chmod(os.path.join(root, f"{name}.bin"), 0o644)
    # nginx's workers run as nobody: the temp dir (0700) must be readable to them
    os.chmod(work, 0o755)
    os.chmod(root, 0o755)
    cores = bench.cpus()
    wrk_cores, proxy_cores = cores[:1], cores[1:2] if len(cores) > 1 else cores
    env = dict(os.environ, TIDEGATE_LOG="warn")
    tp = bench.free_port()
    conf = os.path.join(work, "tidegate.toml")
    with open(conf, "w") as f:
        f.write(f'[basic]\nthreads = 1\nlog_level = "warn"\nwatch = false\n\n[servers.s]\naddr = "127.0.0.1:{tp}"\n'
                f'locations = ["files"]\n\n[locations.files]\npath = "/"\nplugins = ["files"]\n\n'
                f'[plugins.files]\ncategory = "directory"\nroot = "{root}"\n')
    tidegate = bench.Target("tidegate", tp, [bench.TIDEGATE, "-c", conf, "--pid-file", os.path.join(work, "t.pid")],
                            proxy_cores, env)
    np_ = bench.free_port()
    nginx = bench.Target("nginx", np_, bench.nginx_conf(work, "nginx", 1, f"""
  sendfile on; tcp_nopush on;
  server {{ listen 127.0.0.1:{np_}; root {root}; }}"""), proxy_cores)
    report = {"settings": vars(a), "files": {}}
    try:
        for t in (tidegate, nginx):
            t.start(work)
        for name in files:
            path = f"/{name}.bin"
            runs = {"tidegate": [], "nginx": []}
            for r in range(a.rounds):
                for t in (tidegate, nginx) if r % 2 == 0 else (nginx, tidegate):
                    bench.run_wrk(t, 1, a.connections, wrk_cores, path)
                    res = bench.run_wrk(t, a.seconds, a.connections, wrk_cores, path)
                    if res["non_2xx"] or res["socket_errors"]:
                        raise SystemExit(f"{t.name} {path}: {res['non_2xx']} non-2xx, {res['socket_errors']}")
                    runs[t.name].append(res["rps"])
                    bench.log(f"{name} round {r + 1}: {t.name} {res['rps']:,.0f} req/s")
            med = {k: statistics.median(v) for k, v in runs.items()}
            report["files"][name] = {
                "rps": med,
                "mib_s": {k: v * files[name] / (1 << 20) for k, v in med.items()},
                "ratio": med["tidegate"] / med["nginx"] if med["nginx"] else None,
            }
    finally:
        for t in (tidegate, nginx):
            t.stop()
    print("| file | tidegate req/s | nginx req/s | tidegate / nginx |")
    print("| --- | ---: | ---: | ---: |")
    for name, f in report["files"].items():
        print(f"| {name} | {f['rps']['tidegate']:,.0f} | {f['rps']['nginx']:,.0f} | {f['ratio']:.2f} |")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
