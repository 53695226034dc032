#!/bin/sh
# One command for the side-by-side benchmarks (see BENCHMARKS.md):
#
#   support/bench/run.sh            # full run: 5 repetitions, 10,000 idle connections
#   support/bench/run.sh --smoke    # quick check: 1 repetition, short runs, 200 connections
#
# Builds (release) this workspace's bench binary, the ttrpc-rust peer
# (support/bench-ttrpc-rust, outside the workspace), the Go ttrpc 1.1.1 peer
# (support/go/bench) and a static do-nothing process, then runs every case
# interleaved round-robin across implementations, pinned to CPU 0 and
# unpinned, and prints one markdown table of medians (progress on stderr).
# Extra arguments after --smoke (or alone) go to `ttrpc-bench drive`.
set -eu
cmdline="support/bench/run.sh${1:+ $*}"
root=$(cd "$(dirname "$0")/../.." && pwd)
# A target directory of its own: the profile below differs from the
# workspace's (opt-level "z", stripped), and must not make other builds of
# target/release start over.
target=$root/target/bench
out=$target/peers
mkdir -p "$out"

args="--reps 5 --secs 0.8 --conns 10000 --tr-conns 1000"
shimctl_runs=30
if [ "${1:-}" = "--smoke" ]; then
    shift
    shimctl_runs=5
    args="--reps 1 --secs 0.2 --conns 200 --tr-conns 200"
fi

echo "building (release)..." >&2
# Ours at opt-level 3, like the peers and like any downstream binary's
# default release profile (a library's own profile does not apply to its
# dependents); symbols kept for callgrind.
(cd "$root" && CARGO_TARGET_DIR=$target CARGO_PROFILE_RELEASE_OPT_LEVEL=3 \
    CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
    cargo build --release --quiet -p ttrpc-bench)
(cd "$root/support/bench-ttrpc-rust" && cargo build --release --quiet)
(cd "$root/support/go/bench" && GOPATH=/usr/share/gocode GO111MODULE=off go build -o "$out/go-bench" .)
rustc --edition 2021 -C opt-level=z -C panic=abort -C strip=symbols \
    -C target-feature=+crt-static --target x86_64-unknown-linux-gnu \
    -o "$out/sleeper" "$root/support/bench/sleeper.rs"
rustc --edition 2021 -C opt-level=z -C panic=abort -C strip=symbols \
    -o "$out/sleeper-dyn" "$root/support/bench/sleeper.rs"

echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), $(rustc --version | cut -d' ' -f1-2), $(go version | cut -d' ' -f3)"
echo "- command: \`$cmdline\` (runs \`ttrpc-bench drive $args\`)"
# The same servers built the way a size-conscious binary ships (the
# workspace's own profile: opt-level "z", stripped; static glibc), for the
# idle-RSS comparison with the static do-nothing process.
(cd "$root" && CARGO_TARGET_DIR=$root/target/bench-static \
    RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --quiet --target x86_64-unknown-linux-gnu -p ttrpc-bench)
# shellcheck disable=SC2086 # $args is a word list on purpose
"$target/release/ttrpc-bench" drive $args \
    --go "$out/go-bench" \
    --ttrpc-rust "$root/support/bench-ttrpc-rust/target/release/bench-ttrpc-rust" \
    --sleeper "$out/sleeper" --sleeper-dyn "$out/sleeper-dyn" \
    --static-bench "$root/target/bench-static/x86_64-unknown-linux-gnu/release/ttrpc-bench" "$@"

# The shimctl rows (shim RSS, `state` process time, sizes) beside Debian's
# containerd tools: they need root, runc, the shims and ctr.
if [ "$(id -u)" = 0 ] && command -v containerd-shim-runc-v2 >/dev/null && command -v ctr >/dev/null; then
    echo
    "$root/support/bench/shimctl.sh" "$shimctl_runs"
else
    echo "shimctl rows skipped: they need root, containerd's shims and ctr" >&2
fi
