#!/usr/bin/env bash
# Every check CI runs: formatting, lints, all tests (unit and end-to-end over real sockets),
# and `tidegate check` on every shipped config. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
# etcd for the etcd source; curl, openssl, pebble and dnsmasq (the binary only, no system
# service) for the TLS and ACME tests
# and Prometheus, its Pushgateway and promtool for the metrics tests; redis-server (started by
# the tests themselves, no system service) for the cluster-wide limit
scripts/setup.sh etcd-server etcd-client curl openssl pebble dnsmasq-base prometheus prometheus-pushgateway redis-server nginx libnginx-mod-http-lua lua-cjson chromium chromium-driver
# nginx with lua-nginx-module and lua-cjson run the same OpenResty snippets as tidegate's
# `openresty` plugins (tests/openresty.rs compares the answers)
# the Docker discovery and image tests (tests/docker.rs) need the engine running (the machine
# starts it; no registry is needed: the image is built FROM scratch)
docker info >/dev/null 2>&1 || { echo "test.sh: the Docker engine is not reachable (docker info failed); tests/docker.rs needs it" >&2; exit 1; }
# the admin web UI is tested in headless Chromium through Selenium (tests/ui/admin_ui.py)
python3 -c "import selenium" 2>/dev/null || python3 -m pip install --quiet selenium 2>&1 | grep -v "Running pip as the 'root' user" || true
python3 -c "import selenium" || { echo "test.sh: Python's selenium package is needed (pip install selenium)" >&2; exit 1; }
# the HTTP/2 flood test crafts its frames with Python's h2 libraries
python3 -c "import h2" 2>/dev/null || python3 -m pip install --quiet h2 2>&1 | grep -v "Running pip as the 'root' user" || true
python3 -c "import h2" || { echo "test.sh: Python's h2 package is needed (pip install h2)" >&2; exit 1; }

export CARGO_INCREMENTAL=0
export CARGO_TERM_COLOR=never
start=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - start ))s)"; }

step "cargo fmt --check"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --lib --bins --tests -- --test-threads=2 2>&1 | tee "$log"
step "benches compile and run once (criterion test mode)"
cargo test --benches

step "tidegate check on shipped configs"
failed=0
checked=0
for f in conf/*.toml lua/examples/*.toml; do
  [ -e "$f" ] || continue
  case "$f" in conf/systemd*) continue ;; esac
  checked=$((checked + 1))
  if out=$(target/debug/tidegate check -c "$f" 2>&1); then
    echo "ok   $f"
  else
    echo "FAIL $f"; echo "$out"; failed=$((failed + 1))
  fi
done
step "tidegate test on the shipped Lua examples"
examples_failed=0
if ! target/debug/tidegate test lua/examples | tee "$log.examples"; then
  examples_failed=1
fi
examples_passed=$(tail -1 "$log.examples" | awk '{print $1+0}')
examples_bad=$(tail -1 "$log.examples" | awk '{print $3+0}')
rm -f "$log.examples"

step "done"
echo "shipped configs checked: $((checked - failed)) of $checked"
passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
tfailed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
echo "summary: $((passed + checked - failed + examples_passed)) passed, $((tfailed + failed + examples_bad)) failed"
[ "$failed" -eq 0 ] && [ "$examples_failed" -eq 0 ]
