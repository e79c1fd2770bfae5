#!/usr/bin/env bash
# Unpacks Debian bookworm's Node 18 (the one the engine image runs) into DIR without installing
# it, so tests can run the agent on it beside the host's Node 20. Prints the node binary's path.
#   scripts/debian-node18.sh [DIR]      (default: .cache/debian-node18)
# Debian's libnode loads a few builtins from /usr/share/nodejs; when that directory does not
# exist it is linked to the unpacked copy (needs root, as apt does).
set -euo pipefail
dir=$(realpath -m "${1:-.cache/debian-node18}")
node="$dir/bin/node"
if [ -x "$node" ] && "$node" --version >/dev/null 2>&1; then echo "$node"; exit 0; fi
mkdir -p "$dir/debs" "$dir/root" "$dir/bin"
chmod 0777 "$dir/debs"   # apt downloads as its _apt user when it can
cd "$dir/debs"
version=$(apt-cache madison nodejs | awk -F'|' '$2 ~ /^ *18\./ {gsub(/ /,"",$2); print $2; exit}')
[ -n "$version" ] || { echo "Debian's nodejs 18 is not in the apt lists; run apt-get update" >&2; exit 1; }
apt-get download -q "nodejs=$version" "libnode108=$version" libc-ares2 libuv1 libicu72 libnghttp2-14 \
  libbrotli1 node-acorn node-cjs-module-lexer node-undici >&2
for deb in *.deb; do dpkg -x "$deb" "$dir/root"; done
if [ ! -e /usr/share/nodejs ]; then ln -s "$dir/root/usr/share/nodejs" /usr/share/nodejs; fi
cat > "$node" <<EOS
#!/bin/sh
LD_LIBRARY_PATH="$dir/root/usr/lib/x86_64-linux-gnu" exec "$dir/root/usr/bin/node" "\$@"
EOS
chmod +x "$node"
"$node" --version >&2
echo "$node"
