#!/usr/bin/env bash
# Build tidegate's container image FROM scratch, with no base image to pull: stages the
# binary, the shared libraries it links (as `ldd` lists them), the CA bundle, a passwd entry
# for `nobody` and conf/docker.toml as the default config, then `docker build`s docker/Dockerfile.
#
#   scripts/docker-build.sh                        # release build, tag tidegate:latest
#   scripts/docker-build.sh --bin target/debug/tidegate --tag tidegate:dev
set -euo pipefail
cd "$(dirname "$0")/.."
bin=""
tag="tidegate:latest"
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    *) echo "docker-build.sh: unknown argument $1 (use --bin PATH, --tag NAME)" >&2; exit 2 ;;
  esac
done
command -v docker >/dev/null || { echo "docker-build.sh: docker is not installed" >&2; exit 1; }
if [ -z "$bin" ]; then
  scripts/setup.sh
  echo "docker-build.sh: cargo build --release" >&2
  cargo build --release --bin tidegate
  bin=target/release/tidegate
fi
[ -x "$bin" ] || { echo "docker-build.sh: $bin is not an executable" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/rootfs"
mkdir -p "$root/bin" "$root/etc/tidegate" "$root/etc/ssl/certs" "$root/tmp"
chmod 1777 "$root/tmp"
cp "$bin" "$root/bin/tidegate"
# the dynamic loader and every library the binary links, at the paths the binary expects
for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
  cp --parents -L "$lib" "$root/"
done
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
cp conf/docker.toml "$root/etc/tidegate/tidegate.toml"
printf 'root:x:0:0:root:/:/bin/tidegate\nnobody:x:65534:65534:nobody:/:/bin/tidegate\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
cp docker/Dockerfile "$stage/Dockerfile"
echo "docker-build.sh: building $tag from $bin ($(du -sh "$root" | cut -f1) staged)" >&2
docker build --quiet -t "$tag" "$stage" >/dev/null
docker image inspect "$tag" --format 'docker-build.sh: {{index .RepoTags 0}} {{.Size}} bytes' >&2
