#!/usr/bin/env python3
"""Run the benchmark targets side by side and report medians and ratios (see bench.sh)."""
import argparse, json, os, platform, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# TIDEGATE_BIN: another build to measure (an A/B of two commits)
TIDEGATE = os.environ.get("TIDEGATE_BIN") or os.path.join(ROOT, "target/release/tidegate")
PINGORA = os.path.join(ROOT, "target/release/examples/bare_pingora")
BODY = "hello from the upstream"
# the forwarding headers tidegate sets by default, so that every proxy does the same work
FORWARDED = ("proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; "
             "proxy_set_header X-Real-IP $remote_addr; proxy_set_header X-Forwarded-Proto $scheme;")
NGINX_LUA_MODULES = ["/usr/lib/nginx/modules/ndk_http_module.so", "/usr/lib/nginx/modules/ngx_http_lua_module.so"]


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, limit=20.0):
    end = time.time() + limit
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def cpus():
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return list(range(os.cpu_count() or 1))


def pin(cores):
    """taskset prefix for a list of core ids, when taskset exists and there are 2+ cores."""
    if shutil.which("taskset") and len(cpus()) >= 2 and cores:
        return ["taskset", "-c", ",".join(str(c) for c in cores)]
    return []


def rss_kb(pid):
    """RSS of a process and its children (nginx and haproxy have workers)."""
    total = 0
    pids = [pid]
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        pids += [int(p) for p in out.split()]
    except Exception:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class Target:
    def __init__(self, name, port, argv, cores, env=None, headers=None):
        self.name, self.port, self.argv, self.cores = name, port, argv, cores
        self.env = env
        self.headers = headers or []
        self.proc = None
        self.rss_idle = 0

    def start(self, workdir):
        if not self.argv:
            return
        err = open(os.path.join(workdir, f"{self.name}.log"), "w")
        self.proc = subprocess.Popen(pin(self.cores) + self.argv, stdout=subprocess.DEVNULL, stderr=err,
                                     env=self.env, cwd=workdir, start_new_session=True)
        if not wait_port(self.port):
            raise SystemExit(f"{self.name} did not listen on {self.port}; see {workdir}/{self.name}.log")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait()


def parse_wrk(out):
    def dur(v):
        m = re.match(r"([\d.]+)(us|ms|s)", v)
        if not m:
            return None
        n = float(m.group(1))
        return {"us": n / 1000, "ms": n, "s": n * 1000}[m.group(2)]
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50_ms": dur(p50.group(1)) if p50 else None,
        "p99_ms": dur(p99.group(1)) if p99 else None,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def run_wrk(target, seconds, conns, wrk_cores, path="/"):
    cmd = pin(wrk_cores) + ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    for h in target.headers:
        cmd += ["-H", h]
    cmd.append(f"http://127.0.0.1:{target.port}{path}")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    pid = target.proc.pid if target.proc else None
    while proc.poll() is None:
        if pid:
            peak = max(peak, rss_kb(pid))
        time.sleep(0.25)
    res = parse_wrk(proc.stdout.read())
    res["rss_kb"] = peak
    return res


def nginx_conf(dir_, name, workers, body, lua=False):
    path = os.path.join(dir_, f"{name}.conf")
    modules = "".join(f"load_module {m};\n" for m in NGINX_LUA_MODULES) if lua else ""
    with open(path, "w") as f:
        f.write(f"""
{modules}worker_processes {workers};
daemon off;
pid {dir_}/{name}.pid;
error_log {dir_}/{name}.err warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  default_type text/plain;
  client_body_temp_path {dir_}/{name}-body;
  proxy_temp_path {dir_}/{name}-proxy;
  fastcgi_temp_path {dir_}/{name}-fcgi;
  uwsgi_temp_path {dir_}/{name}-uwsgi;
  scgi_temp_path {dir_}/{name}-scgi;
  {body}
}}
""")
    return ["nginx", "-c", path, "-p", dir_]


LUA_CHECK = """-- the same work as the nginx_lua target's access_by_lua + header_filter_by_lua
local M = {}
function M.on_request(req, ctx, conf)
  if req:header("x-api-key") ~= "secret" then
    return req:respond(401, "unauthorized")
  end
end
function M.on_response(req, resp, ctx, conf)
  resp:set_header("x-checked", "1")
end
return M
"""


def tidegate_conf(dir_, name, port, upstream, workers, extra_locations=0, access_log=False, http2=False, lua=False,
                  engine=None, metrics=False, plugins=None):
    """plugins: (names, TOML of their tables) for the location, e.g. callgrind.py's variants."""
    lines = [
        "[basic]", f"threads = {workers}", 'log_level = "warn"', "watch = false", "",
        "[servers.bench]", f'addr = "127.0.0.1:{port}"', f"http2 = {'true' if http2 else 'false'}",
    ]
    if engine:
        lines.append(f'engine = "{engine}"')
    if metrics:
        lines.append('metrics = "/metrics"')
    names = ["all"] + [f"l{i}" for i in range(extra_locations)]
    lines.append("locations = [" + ", ".join(f'"{n}"' for n in names) + "]")
    if access_log:
        lines += ['access_log = "combined"', f'access_log_path = "{dir_}/{name}-access.log"']
    lines += ["", "[locations.all]", 'upstream = "up"']
    if lua:
        script = os.path.join(dir_, f"{name}.lua")
        with open(script, "w") as f:
            f.write(LUA_CHECK)
        lines += ['plugins = ["check"]', "", "[plugins.check]", 'category = "lua"', f'path = "{script}"', ""]
    elif plugins:
        names_, tables = plugins
        lines += ["plugins = [" + ", ".join(f'"{n}"' for n in names_) + "]", "", tables, ""]
    for i in range(extra_locations):
        lines += [f"[locations.l{i}]", f'host = "svc{i}.example.com"', f'path = "/api{i}"', 'upstream = "up"']
    lines += ["", "[upstreams.up]", f'addrs = ["127.0.0.1:{upstream}"]']
    path = os.path.join(dir_, f"{name}.toml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return [TIDEGATE, "-c", path, "--pid-file", os.path.join(dir_, f"{name}.pid")]


def haproxy_conf(dir_, port, upstream, workers):
    path = os.path.join(dir_, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(f"""global
  nbthread {workers}
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  option forwardfor
frontend f
  http-request set-header X-Real-IP %[src]
  http-request set-header X-Forwarded-Proto http
  bind 127.0.0.1:{port}
  default_backend b
backend b
  http-reuse always
  server s1 127.0.0.1:{upstream}
""")
    return ["haproxy", "-f", path, "-db"]


LIMIT = '[plugins.per-ip]\ncategory = "limit"\nkey = "ip"\nrate = "10000000/s"\n'


def make_targets(dir_, workers, upstream_port, proxy_cores, redis_port=None):
    env = dict(os.environ, TIDEGATE_LOG="warn")
    t = []
    p = free_port()
    t.append(Target("tidegate", p, tidegate_conf(dir_, "tidegate", p, upstream_port, workers), proxy_cores, env))
    p = free_port()
    t.append(Target("tidegate_pingora_engine", p,
                    tidegate_conf(dir_, "tidegatepingora", p, upstream_port, workers, engine="pingora"), proxy_cores, env))
    p = free_port()
    t.append(Target("tidegate_1000_locations", p,
                    tidegate_conf(dir_, "tidegate1000", p, upstream_port, workers, extra_locations=1000), proxy_cores, env))
    p = free_port()
    t.append(Target("tidegate_access_log", p,
                    tidegate_conf(dir_, "tidegatelog", p, upstream_port, workers, access_log=True), proxy_cores, env))
    p = free_port()
    t.append(Target("tidegate_metrics", p,
                    tidegate_conf(dir_, "tidegatemetrics", p, upstream_port, workers, metrics=True), proxy_cores, env))
    p = free_port()
    t.append(Target("tidegate_lua", p, tidegate_conf(dir_, "tidegatelua", p, upstream_port, workers, lua=True),
                    proxy_cores, env, headers=["x-api-key: secret"]))
    p = free_port()
    t.append(Target("tidegate_limit", p, tidegate_conf(dir_, "tidegatelimit", p, upstream_port, workers,
                                                       plugins=(["per-ip"], LIMIT)), proxy_cores, env))
    if redis_port:
        p = free_port()
        shared = LIMIT + f'store = "redis://127.0.0.1:{redis_port}/0"\n'
        t.append(Target("tidegate_limit_redis", p, tidegate_conf(dir_, "tidegatelimitredis", p, upstream_port, workers,
                                                                 plugins=(["per-ip"], shared)), proxy_cores, env))
    p = free_port()
    t.append(Target("nginx", p, nginx_conf(dir_, "nginx", workers, f"""
  upstream up {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
  server {{ listen 127.0.0.1:{p}; location / {{ proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; {FORWARDED} }} }}"""),
                    proxy_cores))
    p = free_port()
    t.append(Target("nginx_lua", p, nginx_conf(dir_, "nginxlua", workers, f"""
  upstream up {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
  server {{ listen 127.0.0.1:{p}; location / {{
    access_by_lua_block {{ if ngx.var.http_x_api_key ~= "secret" then return ngx.exit(401) end }}
    header_filter_by_lua_block {{ ngx.header["x-checked"] = "1" }}
    proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; {FORWARDED} }} }}""", lua=True),
                    proxy_cores, headers=["x-api-key: secret"]))
    p = free_port()
    t.append(Target("haproxy", p, haproxy_conf(dir_, p, upstream_port, workers), proxy_cores))
    p = free_port()
    t.append(Target("pingora", p, [PINGORA, f"127.0.0.1:{p}", f"127.0.0.1:{upstream_port}", str(workers)], proxy_cores))
    return t


def median_of(rounds, key):
    vals = [r[key] for r in rounds if r.get(key) is not None]
    if not vals:
        return None, None, None
    return statistics.median(vals), min(vals), max(vals)


def summarize(results):
    out = {}
    for name, rounds in results.items():
        rps, rps_min, rps_max = median_of(rounds, "rps")
        out[name] = {
            "rps": rps, "rps_min": rps_min, "rps_max": rps_max,
            "p50_ms": median_of(rounds, "p50_ms")[0],
            "p99_ms": median_of(rounds, "p99_ms")[0],
            "rss_kb": max((r.get("rss_kb") or 0) for r in rounds),
            "rss_idle_kb": rounds[0].get("rss_idle_kb"),
            "errors": sum(r.get("non_2xx", 0) for r in rounds),
            "socket_errors": [r["socket_errors"] for r in rounds if r.get("socket_errors")],
        }
    return out


def ratios(s):
    def r(a, b):
        if s.get(a, {}).get("rps") and s.get(b, {}).get("rps"):
            return round(s[a]["rps"] / s[b]["rps"], 3)
        return None
    return {
        "tidegate_vs_nginx": r("tidegate", "nginx"),
        "tidegate_lua_vs_nginx_lua": r("tidegate_lua", "nginx_lua"),
        "tidegate_lua_vs_nginx": r("tidegate_lua", "nginx"),
        "tidegate_vs_tidegate_pingora_engine": r("tidegate", "tidegate_pingora_engine"),
        "tidegate_lua_vs_tidegate": r("tidegate_lua", "tidegate"),
        "nginx_lua_vs_nginx": r("nginx_lua", "nginx"),
        "tidegate_vs_haproxy": r("tidegate", "haproxy"),
        "tidegate_vs_pingora": r("tidegate", "pingora"),
        "tidegate_1000_locations_vs_tidegate": r("tidegate_1000_locations", "tidegate"),
        "tidegate_access_log_vs_tidegate": r("tidegate_access_log", "tidegate"),
        "tidegate_metrics_vs_tidegate": r("tidegate_metrics", "tidegate"),
        "pingora_vs_nginx": r("pingora", "nginx"),
        "haproxy_vs_nginx": r("haproxy", "nginx"),
    }


def table(title, s, rt):
    rows = [f"### {title}", "", "| target | req/s (median) | min | max | p50 ms | p99 ms | RSS idle KB | RSS load KB |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    f = lambda v, d=0: "n/a" if v is None else f"{v:,.{d}f}"
    for name, v in s.items():
        rows.append(f"| {name} | {f(v['rps'])} | {f(v['rps_min'])} | {f(v['rps_max'])} | {f(v['p50_ms'], 2)} | "
                    f"{f(v['p99_ms'], 2)} | {f(v['rss_idle_kb'])} | {f(v['rss_kb'])} |")
    rows += ["", "| ratio (req/s) | value |", "| --- | ---: |"]
    for k, v in rt.items():
        rows.append(f"| {k} | {'n/a' if v is None else f'{v:.3f}'} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--seconds", type=int)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--only", help="comma-separated target names, for quick A/B runs")
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.quick else 5)
    seconds = args.seconds or (3 if args.quick else 10)
    worker_sets = [1] if args.quick else [1, 2]
    for exe in (TIDEGATE, PINGORA):
        if not os.path.exists(exe):
            raise SystemExit(f"{exe} is missing: run scripts/bench.sh (it builds it)")

    cores = cpus()
    wrk_cores = cores[:1]
    report = {"machine": {"cpus": len(cores), "platform": platform.platform(), "when": time.strftime("%Y-%m-%d %H:%M:%S")},
              "settings": {"rounds": rounds, "seconds": seconds, "connections": args.connections}}
    md = []
    work = tempfile.mkdtemp(prefix="tidegate-bench-")
    upstream = None
    started = []  # every target started, so that an error stops them all
    try:
        up_port = free_port()
        upstream = Target("upstream", up_port, nginx_conf(work, "upstream", 1, f"""
  server {{ listen 127.0.0.1:{up_port}; keepalive_requests 1000000; location / {{ return 200 "{BODY}"; }} }}"""), wrk_cores)
        upstream.start(work)
        # the Redis of the cluster-wide limit, next to the upstream (wrk's core)
        redis = None
        if shutil.which("redis-server"):
            rp = free_port()
            redis = Target("redis", rp, ["redis-server", "--port", str(rp), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no"], wrk_cores)
            started.append(redis)
            redis.start(work)
        for workers in worker_sets:
            # 1 worker: wrk and the upstream on the first core, the proxy alone on the other
            proxy_cores = cores[1:2] if workers == 1 and len(cores) >= 2 else cores
            targets = make_targets(work, workers, up_port, proxy_cores, redis.port if redis else None)
            if args.only:
                keep = set(args.only.split(","))
                targets = [t for t in targets if t.name in keep]
            direct = Target("upstream_direct", up_port, None, wrk_cores)
            direct.proc = upstream.proc
            for t in targets:
                started.append(t)
                t.start(work)
            time.sleep(0.5)
            for t in targets + [direct]:
                t.rss_idle = rss_kb(t.proc.pid) if t.proc else 0
            everyone = ([direct] if not args.only or "upstream_direct" in args.only else []) + targets
            results = {t.name: [] for t in everyone}
            for r in range(rounds):
                order = everyone[r % len(everyone):] + everyone[:r % len(everyone)]
                for t in order:
                    run_wrk(t, 1, args.connections, wrk_cores)  # warm-up
                    res = run_wrk(t, seconds, args.connections, wrk_cores)
                    res["rss_idle_kb"] = t.rss_idle
                    results[t.name].append(res)
                    log(f"workers={workers} round={r + 1}/{rounds} {t.name}: {res['rps']:,.0f} req/s p99 {res['p99_ms']} ms")
            s = summarize(results)
            rt = ratios(s)
            key = "" if workers == 1 else f"_{workers}_workers"
            report["targets" + key] = s
            report["ratios" + key] = rt
            md.append(table(f"{workers} worker(s), {rounds} round(s) of {seconds} s, {args.connections} connections", s, rt))

            for t in targets:
                t.stop()

        # h2c: tidegate with http2 = true
        p = free_port()
        conf = tidegate_conf(work, "tidegateh2", p, up_port, 1, http2=True)
        h2t = Target("tidegate_h2c", p, conf, cores[1:2] if len(cores) >= 2 else cores, dict(os.environ, TIDEGATE_LOG="warn"))
        started.append(h2t)
        h2t.start(work)
        n = "20000" if args.quick else "200000"

        def h2load(port):
            h2 = subprocess.run(pin(wrk_cores) + ["h2load", "-n", n, "-c", "10", "-m", "10",
                                                  f"http://127.0.0.1:{port}/"], capture_output=True, text=True)
            m = re.search(r"finished in .*?, ([\d.]+) req/s", h2.stdout)
            ok = re.search(r"(\d+) succeeded", h2.stdout)
            return {"requests": int(n), "rps": float(m.group(1)) if m else None,
                    "succeeded": int(ok.group(1)) if ok else None}

        report["h2load_h2c_tidegate"] = h2load(p)
        # nginx over h2c (prior knowledge), the same proxy_pass, for the ratio
        pn = free_port()
        nginx_h2 = Target("nginx_h2c", pn, nginx_conf(work, "nginxh2", 1, f"""
  upstream up {{ server 127.0.0.1:{up_port}; keepalive 64; }}
  keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{pn} http2; location / {{ proxy_pass http://up; proxy_http_version 1.1;
    proxy_set_header Connection ""; {FORWARDED} }} }}"""), cores[1:2] if len(cores) >= 2 else cores)
        started.append(nginx_h2)
        nginx_h2.start(work)
        report["h2load_h2c_nginx"] = h2load(pn)
        nginx_h2.stop()
        a, b = report["h2load_h2c_tidegate"]["rps"], report["h2load_h2c_nginx"]["rps"]
        report["ratios_h2c"] = {"tidegate_h2c_vs_nginx_h2c": round(a / b, 3) if a and b else None}
        for name in ("tidegate", "nginx"):
            r = report[f"h2load_h2c_{name}"]
            md.append(f"\nh2load over h2c to {name} (10 connections x 10 streams, {n} requests): "
                      f"{r['rps']} req/s, {r['succeeded']} succeeded")
        md.append(f"tidegate_h2c_vs_nginx_h2c: {report['ratios_h2c']['tidegate_h2c_vs_nginx_h2c']}")

        if not args.quick:
            start_rss = rss_kb(h2t.proc.pid)
            soak = subprocess.run(pin(wrk_cores) + ["h2load", "--h1", "-n", "1000000", "-c", "50", f"http://127.0.0.1:{p}/"],
                                  capture_output=True, text=True, timeout=900)
            end_rss = rss_kb(h2t.proc.pid)
            ok = re.search(r"(\d+) succeeded", soak.stdout)
            report["soak_1m"] = {"requests": 1000000, "succeeded": int(ok.group(1)) if ok else None,
                                 "rss_start_kb": start_rss, "rss_end_kb": end_rss}
            md.append(f"1M-request HTTP/1.1 soak: {report['soak_1m']['succeeded']} succeeded; RSS {start_rss} KB → {end_rss} KB")
        h2t.stop()
    finally:
        for t in started:
            t.stop()
        if upstream:
            upstream.stop()
    print(f"## tidegate benchmark, {report['machine']['when']}, {report['machine']['cpus']} CPUs\n")
    print("\n\n".join(md))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "bench.json"), "w") as f:
            json.dump(report, f, indent=2)
        log(f"wrote {args.out}/bench.json")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
