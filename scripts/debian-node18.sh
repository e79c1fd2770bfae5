#!/usr/bin/env bash
# Unpacks Debian bookworm's Node 18 (the one the engine image runs) into DIR without installing
# it, so tests can run the agent on it beside the host's Node 20. Prints the node binary's path.
#   scripts/debian-node18.sh [DIR]      (default: .cache/debian-node18)
# Debian's libnode loads a few builtins (acorn, cjs-module-lexer, undici) from paths compiled
# into it under /usr/share/nodejs, with no flag or variable to move them. So the wrapper it writes
# runs node in a private mount namespace where the unpacked usr/share is overlaid on the system's
# (`unshare -m`, and `-r` too when not root): nothing outside DIR is changed, nothing outlives the
# process, and deleting DIR leaves nothing dangling.
set -euo pipefail
dir=$(realpath -m "${1:-.cache/debian-node18}")
node="$dir/bin/node"
# `-e 0` loads the builtins (`--version` does not): a wrapper that cannot find them is rewritten.
if [ -x "$node" ] && "$node" -e 0 >/dev/null 2>&1; then echo "$node"; exit 0; fi
mkdir -p "$dir/debs" "$dir/root" "$dir/bin"
chmod 0777 "$dir/debs"   # apt downloads as its _apt user when it can
cd "$dir/debs"
version=$(apt-cache madison nodejs | awk -F'|' '$2 ~ /^ *18\./ {gsub(/ /,"",$2); print $2; exit}')
[ -n "$version" ] || { echo "Debian's nodejs 18 is not in the apt lists; run apt-get update" >&2; exit 1; }
apt-get download -q "nodejs=$version" "libnode108=$version" libc-ares2 libuv1 libicu72 libnghttp2-14 \
  libbrotli1 node-acorn node-cjs-module-lexer node-undici >&2
for deb in *.deb; do dpkg -x "$deb" "$dir/root"; done
cat > "$node" <<EOS
#!/bin/sh
# Debian's Node 18 unpacked in $dir (scripts/debian-node18.sh), its /usr/share/nodejs overlaid in a
# private mount namespace; exec all the way, so the pid is node's.
if [ "\$(id -u)" = 0 ]; then ns=-m; else ns=-rm; fi
exec unshare "\$ns" sh -c 'mount -t overlay sandlet-node18 -o lowerdir="\$0/root/usr/share:/usr/share" /usr/share && LD_LIBRARY_PATH="\$0/root/usr/lib/x86_64-linux-gnu" exec "\$0/root/usr/bin/node" "\$@"' "$dir" "\$@"
EOS
chmod +x "$node"
"$node" -e 'process.stderr.write(process.version + "\n")' || { echo "Debian's Node 18 cannot run here: it needs a private mount namespace with overlayfs (unshare -m)" >&2; exit 1; }
echo "$node"
