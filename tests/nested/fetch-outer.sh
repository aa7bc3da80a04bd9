#!/bin/sh
# Fetches the nested lane's outer kernel (Debian's generic linux-image-6.1.0-*-amd64,
# which carries kvm/kvm-amd as modules) and busybox-static with `apt-get download`,
# unpacks them with dpkg-deb -x into ${COCOON_CACHE:-~/.cache/cocoon}/nested/<package_version>/
# and prints that directory. No root install. Exit 1 with a reason on stderr on failure.
set -eu
CACHE=${COCOON_CACHE:-$HOME/.cache/cocoon}/nested
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-amd64\)$/\1/p' | head -1)
[ -n "$pkg" ] || { echo "cannot find the linux-image-6.1.0-*-amd64 package (apt-cache depends linux-image-amd64)" >&2; exit 1; }
ver=$(apt-cache policy "$pkg" | sed -n 's/^ *Candidate: //p')
dir="$CACHE/${pkg}_$ver"
if [ ! -e "$dir/.done" ]; then
    mkdir -p "$dir/deb" "$dir/root"
    ( cd "$dir/deb" && apt-get download "$pkg" busybox-static >/dev/null 2>&1 ) ||
        { echo "apt-get download $pkg busybox-static failed" >&2; exit 1; }
    for d in "$dir"/deb/*.deb; do dpkg-deb -x "$d" "$dir/root"; done
    rm -rf "$dir/deb"
    touch "$dir/.done"
fi
echo "$dir"
