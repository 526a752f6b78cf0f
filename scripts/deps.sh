#!/bin/sh
# Installs what building and testing govmm needs, idempotently: it asks apt
# only for packages that are missing, and says nothing when all are there.
set -eu
need=""
for p in "$@"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		need="$need $p"
	fi
done
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages:$need (run as root, or install them yourself)" >&2
	exit 1
fi
echo "deps: installing$need" >&2
export DEBIAN_FRONTEND=noninteractive
# apt-cache knows nothing until the first update on a fresh machine.
if ! apt-get install -y -q --no-install-recommends $need >/dev/null 2>&1; then
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends $need >/dev/null
fi
