#!/usr/bin/env bash
# Regenerate core/tests/golden from Go ttrpc 1.1.1 (Debian golang-github-containerd-ttrpc-dev).
# Offline: GOPATH mode against /usr/share/gocode, no module proxy.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/../../.." && pwd))"
cd "$root"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

export GOPATH="${GOPATH_OVERRIDE:-/usr/share/gocode}"
export GO111MODULE=off
export GOFLAGS=
export GOPROXY=off

go build -o "$tmp/golden" ./support/go/golden
"$tmp/golden" -out core/tests/golden
