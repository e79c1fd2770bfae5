#!/usr/bin/env bash
# Builds sandlet's default base image offline: debootstrap a minimal Debian from Debian's
# packages (with Debian's nodejs, which the agent runs on, and python3, which Python
# storlets run on), then `docker import` it. Nothing is
# pulled from a registry. An online user may skip this and build the engine on an upstream base:
#   sandlet image build --base debian:bookworm-slim   (that base must provide node >= 18)
#
#   scripts/build-base-image.sh [TAG] [SUITE] [MIRROR]
#     TAG     default sandlet/base:bookworm
#     SUITE   default bookworm
#     MIRROR  default http://deb.debian.org/debian
set -euo pipefail
tag="${1:-sandlet/base:bookworm}"
suite="${2:-bookworm}"
mirror="${3:-http://deb.debian.org/debian}"

# A base built before Python storlets (no python3 label) is rebuilt.
if [ -n "$(docker image inspect "$tag" --format '{{index .Config.Labels "io.sandlet.base.python"}}' 2>/dev/null)" ] \
   && [ -z "${SANDLET_REBUILD_BASE:-}" ]; then
  echo "base image $tag exists (SANDLET_REBUILD_BASE=1 rebuilds it)"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install -y debootstrap" >&2; exit 1; }

root=$(mktemp -d /tmp/sandlet-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "[base] debootstrap $suite (minbase + nodejs + python3) into $root"
debootstrap --variant=minbase --include=nodejs,python3,ca-certificates "$suite" "$root" "$mirror" >"$root.log" 2>&1 \
  || { tail -20 "$root.log"; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
# Keep the image small: no apt lists, caches, docs or man pages.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
       "$root"/usr/share/locale/* "$root"/var/log/*
node_version=$(chroot "$root" /usr/bin/node --version)
python_version=$(chroot "$root" /usr/bin/python3 --version | cut -d' ' -f2)
echo "[base] node $node_version, python $python_version; importing as $tag"
tar -C "$root" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c "LABEL io.sandlet.base.suite=$suite io.sandlet.base.node=$node_version io.sandlet.base.python=$python_version" \
  - "$tag" >/dev/null
docker image inspect "$tag" --format '[base] {{.RepoTags}} {{.Size}} bytes'
