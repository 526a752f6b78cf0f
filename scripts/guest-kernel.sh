#!/bin/sh
# Builds the govmm guest kernel: Debian's linux-source-6.1, `make
# tinyconfig`, plus guest/kernel/govmm.config. The result goes to
# $GOVMM_CACHE/guest-kernel/{bzImage,vmlinux,config}. The build tree lives
# outside the repository (it is about 1.5 GB) and is reused, so a second run
# only rebuilds what changed.
#
#   GOVMM_CACHE   cache root (default $HOME/.cache/govmm)
#   JOBS          parallel make jobs (default: nproc)
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
# GOVMM_KERNEL_FRAGMENT swaps in another fragment, for trying options out.
fragment="${GOVMM_KERNEL_FRAGMENT:-$repo/guest/kernel/govmm.config}"
cache="${GOVMM_CACHE:-$HOME/.cache/govmm}"
build="$cache/linux-build"
out="$cache/guest-kernel"
jobs="${JOBS:-$(nproc)}"
tarball=/usr/src/linux-source-6.1.tar.xz

log() { echo "guest-kernel: $*" >&2; }

# gcc/make/libc6-dev build it, flex/bison/bc the kconfig and headers,
# libelf-dev objtool, lz4 the compressed image (CONFIG_KERNEL_LZ4).
"$repo/scripts/deps.sh" linux-source-6.1 flex bison bc libelf-dev lz4 xz-utils gcc make libc6-dev
[ -r "$tarball" ] || { log "$tarball missing after installing linux-source-6.1"; exit 1; }

# Extract once per tarball: a newer linux-source-6.1 package gets a fresh tree,
# so an upgrade never builds a mix of two versions.
stamp="$build/.extracted"
src="$build/linux-source-6.1"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(stat -c '%s %Y' "$tarball")" ]; then
	log "extracting $tarball into $build"
	rm -rf "$build"
	mkdir -p "$build"
	tar -C "$build" -xJf "$tarball"
	stat -c '%s %Y' "$tarball" >"$stamp"
fi
[ -d "$src" ] || { log "$tarball did not contain linux-source-6.1/"; exit 1; }
cd "$src"

log "configuring: tinyconfig + $fragment"
make -s tinyconfig >/dev/null
# -m: merge only; olddefconfig below resolves dependencies once, with the
# same rules for every option.
scripts/kconfig/merge_config.sh -m .config "$fragment" >/dev/null
make -s olddefconfig >/dev/null

# Kconfig drops silently what it cannot satisfy (a missing dependency, an
# option renamed upstream). Check every fragment line against the result.
bad=""
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*)
		grep -qxF "$line" .config || bad="$bad
  want $line, got: $(grep -E "^(# )?${line%%=*}[= ]" .config || echo 'absent (dependencies not met?)')"
		;;
	"# CONFIG_"*" is not set")
		opt=${line#"# "}
		opt=${opt%" is not set"}
		if got=$(grep -E "^$opt=" .config); then
			bad="$bad
  want $line, got: $got"
		fi
		;;
	esac
done <"$fragment"
if [ -n "$bad" ]; then
	log "these options of $fragment did not stick:$bad"
	exit 1
fi

log "building bzImage and vmlinux with -j$jobs"
start=$(date +%s)
make -s -j"$jobs" bzImage vmlinux
log "built in $(( $(date +%s) - start )) s"

mkdir -p "$out"
# Copy through temporary names and rename, so a reader never sees half a file.
for f in arch/x86/boot/bzImage vmlinux .config; do
	name=$(basename "$f"); [ "$name" = .config ] && name=config
	cp "$f" "$out/.$name.tmp"
	mv "$out/.$name.tmp" "$out/$name"
done
log "$(make -s kernelrelease): $(stat -c %s "$out/bzImage") byte bzImage"
echo "$out/bzImage"
echo "$out/vmlinux"
