#!/bin/sh
# The shimctl rows of BENCHMARKS.md, side by side with Debian's containerd
# 1.6 tools (needs root, runc, busybox, containerd's shims and ctr):
#   - RSS of a shim holding one running task: `shimctl serve` vs
#     `containerd-shim` (v1) vs `containerd-shim-runc-v2`;
#   - `shimctl state` vs `ctr shim --id ... state` against the same shim,
#     whole process start to exit (median of N runs);
#   - sizes: the stripped static shimctl, Debian's ctr, a static hello-world.
#
#   support/bench/shimctl.sh [RUNS]     (default 50 runs for the timings)
set -eu
runs=${1:-50}
root=$(cd "$(dirname "$0")/../.." && pwd)
target=x86_64-unknown-linux-gnu
work=$(mktemp -d /tmp/shimctl-bench.XXXXXX)
ns=shimctl-bench-$$
v1sock=shimctl-bench-v1-$$
pids=""
cleanup() {
    for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
    for id in v1 v2; do runc --root "/run/containerd/runc/$ns" delete -f "$id" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "building (static release shimctl, hello-world)..." >&2
size_out=$("$root/cli/size-check.sh" 2>&1) || true
shimctl=$root/target/$target/release/shimctl

bundle() { # DIR: a busybox bundle whose init sleeps
    mkdir -p "$1/rootfs/bin"
    cp "$(command -v busybox)" "$1/rootfs/bin/busybox"
    for l in sh sleep; do ln -s busybox "$1/rootfs/bin/$l"; done
    (cd "$1" && runc spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"sleep", "3600"/' config.json)
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# Milliseconds per run of a command, median of $runs.
time_ms() {
    i=0
    while [ $i -lt "$runs" ]; do
        s=$(date +%s%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; e=$(date +%s%N)
        echo $(((e - s) / 1000))
        i=$((i + 1))
    done | median | awk '{printf "%.2f", $1 / 1000}'
}

# Ours: shimctl serve with one host task.
mkdir -p "$work/ours"
printf '{"process":{"args":["sleep","3600"],"env":["PATH=/bin:/usr/bin"],"cwd":"/"}}' >"$work/ours/config.json"
"$shimctl" serve --socket "unix://$work/ours.sock" </dev/null >/dev/null 2>&1 &
ours=$!; pids="$pids $ours"
while [ ! -S "$work/ours.sock" ]; do sleep 0.05; done
"$shimctl" --socket "unix://$work/ours.sock" --id t create --bundle "$work/ours" >/dev/null
"$shimctl" --socket "unix://$work/ours.sock" --id t start >/dev/null

# containerd-shim (v1) with a runc container.
bundle "$work/v1"
mkdir -p "$work/v1w"
(cd "$work/v1" && setsid containerd-shim -namespace "$ns" -socket "$v1sock" -workdir "$work/v1w" \
    -address /run/containerd/containerd.sock -runtime-root /run/containerd/runc </dev/null >/dev/null 2>&1 &)
i=0
until grep -q "@$v1sock" /proc/net/unix; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "containerd-shim did not listen" >&2; exit 1; }
    sleep 0.1
done
v1=$(pgrep -f -- "-socket $v1sock" | head -1); pids="$pids $v1"
touch "$work/v1.out"
"$shimctl" --api v1 --socket "$v1sock" --id v1 create --bundle "$work/v1" --stdout "$work/v1.out" --stderr "$work/v1.out" >/dev/null
"$shimctl" --api v1 --socket "$v1sock" --id v1 start >/dev/null

# containerd-shim-runc-v2 with a runc container (its log fifo drained).
bundle "$work/v2"
mkfifo "$work/v2/log"; cat "$work/v2/log" >/dev/null &
pids="$pids $!"
v2addr=$(cd "$work/v2" && containerd-shim-runc-v2 -namespace "$ns" -id v2 -address /run/containerd/containerd.sock start </dev/null)
v2=$(pgrep -f -- "-namespace $ns -id v2" | head -1); pids="$pids $v2"
touch "$work/v2.out"
"$shimctl" -n "$ns" --id v2 create --bundle "$work/v2" --stdout "$work/v2.out" --stderr "$work/v2.out" >/dev/null
"$shimctl" -n "$ns" --id v2 start >/dev/null
sleep 1

r_ours=$(rss_kib "$ours"); r_v1=$(rss_kib "$v1"); r_v2=$(rss_kib "$v2")
t_ours=$(time_ms "$shimctl" -n "$ns" --id v2 state)
t_ctr=$(time_ms ctr -n "$ns" shim --id v2 state)
s_ours=$(stat -c %s "$shimctl"); s_ctr=$(stat -c %s "$(command -v ctr)")
s_hello=$(echo "$size_out" | awk '/hello-world/ {print $3}')

echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; kernel $(uname -r); containerd $(containerd --version | awk '{print $3}'); command: \`support/bench/shimctl.sh $runs\`"
echo
echo "| shimctl case | ours | peer | ratio |"
echo "|---|---|---|---|"
awk -v o="$r_ours" -v p="$r_v1" 'BEGIN {printf "| RSS of a shim holding one task, KiB: shimctl serve vs containerd-shim (v1) | %d | %d | %.2f× |\n", o, p, o / p}'
awk -v o="$r_ours" -v p="$r_v2" 'BEGIN {printf "| RSS of a shim holding one task, KiB: shimctl serve vs containerd-shim-runc-v2 | %d | %d | %.2f× |\n", o, p, o / p}'
awk -v o="$t_ours" -v p="$t_ctr" 'BEGIN {printf "| `state` against runc-v2, whole process, ms (median of %d): shimctl vs ctr shim | %.2f | %.2f | %.2f× |\n", '"$runs"', o, p, o / p}'
awk -v o="$s_ours" -v p="$s_ctr" 'BEGIN {printf "| binary size, KiB: static stripped shimctl vs Debian ctr | %d | %d | %.2f× |\n", o / 1024, p / 1024, o / p}'
awk -v o="$s_ours" -v p="$s_hello" 'BEGIN {printf "| binary size, KiB: static shimctl vs static hello-world (budget +400) | %d | %d | +%d KiB |\n", o / 1024, p / 1024, (o - p) / 1024}'
