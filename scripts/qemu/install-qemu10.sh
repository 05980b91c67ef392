#!/bin/sh
# QEMU 10.0 (Debian bookworm-backports) in a private prefix, beside the system's QEMU 7.2, which it
# leaves alone (CI and the e2e test use whatever qemu-system-x86_64 is on PATH).
#
#   sh scripts/qemu/install-qemu10.sh [PREFIX]        # default $HOME/.cache/ppm-prefetch-qemu/qemu10
#   npm run qemu-demo -- --qemu PREFIX/bin/qemu-system-x86_64 ...
#
# It downloads Debian packages (apt-get download, no install, nothing built) and unpacks them with
# dpkg -x: qemu-system-x86, qemu-system-common, qemu-system-data and seabios (QEMU 10 wants seabios
# >> 1.16.3-1; bookworm has 1.16.2). Every library QEMU 10 links against is in bookworm already
# (checked with ldd). PREFIX/bin/qemu-system-x86_64 is a wrapper that points QEMU at the prefix's
# firmware (-L, searched before the system's /usr/share/qemu) and modules (QEMU_MODULE_DIR: the
# system's /usr/lib/x86_64-linux-gnu/qemu holds 7.2's, which 10.0 must not load).
# Needs apt-get (root for `apt-get update` of the backports list; the list goes to a temporary file,
# the system's sources are not changed).
set -eu
PREFIX=${1:-$HOME/.cache/ppm-prefetch-qemu/qemu10}
QEMU_VERSION=${QEMU_VERSION:-1:10.0.2+ds-2+deb13u1~bpo12+1}
SEABIOS_VERSION=${SEABIOS_VERSION:-1.16.3-2~bpo12+1}
LIST=$(mktemp)
trap 'rm -f "$LIST"' EXIT
echo 'deb http://deb.debian.org/debian bookworm-backports main' > "$LIST"
APTO="-o Dir::Etc::sourcelist=$LIST -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0"
# shellcheck disable=SC2086
apt-get update $APTO >/dev/null
mkdir -p "$PREFIX/debs" "$PREFIX/root" "$PREFIX/bin"
cd "$PREFIX/debs"
# shellcheck disable=SC2086
apt-get download $APTO "qemu-system-x86=$QEMU_VERSION" "qemu-system-common=$QEMU_VERSION" \
  "qemu-system-data=$QEMU_VERSION" "seabios=$SEABIOS_VERSION"
for f in ./*.deb; do dpkg -x "$f" "$PREFIX/root"; done
cat > "$PREFIX/bin/qemu-system-x86_64" <<EOF
#!/bin/sh
QEMU_MODULE_DIR="$PREFIX/root/usr/lib/x86_64-linux-gnu/qemu" exec "$PREFIX/root/usr/bin/qemu-system-x86_64" -L "$PREFIX/root/usr/share/qemu" -L "$PREFIX/root/usr/share/seabios" "\$@"
EOF
chmod +x "$PREFIX/bin/qemu-system-x86_64"
if ldd "$PREFIX/root/usr/bin/qemu-system-x86_64" | grep -q 'not found'; then
  echo "install-qemu10: missing libraries:" >&2
  ldd "$PREFIX/root/usr/bin/qemu-system-x86_64" | grep 'not found' >&2
  exit 1
fi
"$PREFIX/bin/qemu-system-x86_64" --version | head -1
echo "use: npm run qemu-demo -- --qemu $PREFIX/bin/qemu-system-x86_64 ..."
