#!/bin/sh
# Runs every Fuzz target in the module for DURATION each (default 3s), one
# target at a time because `go test -fuzz` takes exactly one. New targets
# are picked up automatically: there is no list to forget to update.
set -eu
dur="${1:-3s}"
cd "$(dirname "$0")/.."
fail=0
for f in $(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do
	dir=$(dirname "$f")
	for t in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$f"); do
		printf 'fuzz %-40s %s ... ' "$dir" "$t"
		if out=$(go test -run='^$' -fuzz="^$t\$" -fuzztime="$dur" "$dir" 2>&1); then
			echo ok
		else
			echo FAIL; echo "$out"; fail=1
		fi
	done
done
exit $fail
