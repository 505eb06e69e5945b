#!/usr/bin/env bash
# Side-by-side benchmark on this machine: the upstream alone, tidegate (plain, with 1,000
# locations, with its access log), nginx (proxy_pass; and with access_by_lua), HAProxy, and a
# bare Pingora forwarder, all against the same nginx upstream, on 127.0.0.1 only.
#
#   scripts/bench.sh              # full: workers 1 and 2, 5 rounds of 10 s, h2load, 1M soak
#   scripts/bench.sh --quick      # 1 worker, 1 round of 3 s, no soak: about a minute after the build
#   scripts/bench.sh --out DIR    # also write DIR/bench.json
#   scripts/bench.sh --tls [--quick]  # HTTPS against nginx instead (scripts/bench_tls.py)
#
# Prints a markdown table; ratios are tidegate / peer, measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh nginx libnginx-mod-http-lua haproxy wrk nghttp2-client openssl
echo "bench: building release binaries (incremental after the first time)" >&2
cargo build --release --bin tidegate --example bare_pingora >&2
if [ "${1:-}" = "--tls" ]; then
  shift
  exec python3 scripts/bench_tls.py "$@"
fi
exec python3 scripts/bench.py "$@"
