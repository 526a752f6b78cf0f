#!/bin/sh
# Fetches Debian's current cloud kernel (linux-image-*-cloud-amd64) into a
# cache outside the repository and prints the path of its bzImage,
# boot/vmlinuz-*. The integration tests boot it as a real-world kernel. A
# second run prints the cached path at once, without asking apt anything;
# delete the cache directory to fetch a newer kernel.
#
#   GOVMM_CACHE   cache root (default $HOME/.cache/govmm); the kernel goes
#                 to $GOVMM_CACHE/debian-kernel/<package>/
set -eu
cache="${GOVMM_CACHE:-$HOME/.cache/govmm}/debian-kernel"
current="$cache/current"   # holds the path of the cached vmlinuz

log() { echo "debian-kernel: $*" >&2; }

if [ -f "$current" ] && kernel=$(cat "$current") && [ -f "$kernel" ]; then
	echo "$kernel"
	exit 0
fi

# The metapackage depends on exactly one versioned image; that is the
# current one. apt-cache knows nothing until the first apt-get update on a
# fresh machine, so update once if it comes back empty.
find_pkg() {
	apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][0-9a-z.+-]*-cloud-amd64\)$/\1/p' | head -n 1
}
pkg=$(find_pkg)
if [ -z "$pkg" ]; then
	log "apt knows no linux-image-cloud-amd64; running apt-get update"
	apt-get update -q >/dev/null
	pkg=$(find_pkg)
fi
if [ -z "$pkg" ]; then
	log "cannot find the package linux-image-cloud-amd64 depends on (apt-cache depends linux-image-cloud-amd64)"
	exit 1
fi

mkdir -p "$cache"
# Download and unpack into a scratch directory and rename it into place, so
# an interrupted run leaves nothing that looks like a cached kernel.
work=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "downloading $pkg"
# As root apt-get download warns that the _apt user cannot write to the
# directory (it downloads unsandboxed instead); show apt's output only if
# it fails.
if ! out=$(cd "$work" && apt-get download -q "$pkg" 2>&1); then
	echo "$out" >&2
	log "apt-get download $pkg failed"
	exit 1
fi
deb=$(ls "$work"/*.deb)
dpkg-deb -x "$deb" "$work/root"
kernel=$(ls "$work"/root/boot/vmlinuz-* 2>/dev/null | head -n 1)
if [ -z "$kernel" ]; then
	log "$deb has no boot/vmlinuz-*"
	exit 1
fi
rm -rf "${cache:?}/$pkg"
mv "$work/root" "$cache/$pkg"
kernel="$cache/$pkg/boot/$(basename "$kernel")"
echo "$kernel" >"$work/current"
mv "$work/current" "$current"
log "$pkg unpacked in $cache/$pkg"
echo "$kernel"
