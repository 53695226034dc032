#!/bin/sh
# Builds shimctl and a hello-world statically with the same profile (the
# workspace release profile, which keeps panic = "unwind") and the same
# RUSTFLAGS (the README's static recipe unless RUSTFLAGS is set), and prints
# both sizes and the difference (budget: 400 KiB).
#   cli/size-check.sh
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
target=x86_64-unknown-linux-gnu
export RUSTFLAGS="${RUSTFLAGS:--C target-feature=+crt-static -C force-frame-pointers=yes}"

cd "$root"
tdir=${CARGO_TARGET_DIR:-$root/target}
cargo build --quiet --locked --release -p shimctl --target "$target"
shimctl="$tdir/$target/release/shimctl"

# The hello-world: a throwaway crate with the same [profile.release].
hello=$(mktemp -d /tmp/shimctl-hello.XXXXXX)
trap 'rm -rf "$hello"' EXIT
mkdir -p "$hello/src"
{
    printf '[package]\nname = "hello"\nversion = "0.0.0"\nedition = "2024"\n\n[workspace]\n\n'
    sed -n '/^\[profile.release\]/,/^\[/p' "$root/Cargo.toml" | sed '$ { /^\[/d }'
} >"$hello/Cargo.toml"
printf 'fn main() {\n    println!("hello, world");\n}\n' >"$hello/src/main.rs"
CARGO_TARGET_DIR="$tdir/size-check" cargo build --quiet --release \
    --manifest-path "$hello/Cargo.toml" --target "$target"
hellobin="$tdir/size-check/$target/release/hello"

# No program interpreter: static (static-pie included). binutils' readelf
# comes with the linker the build needs; `file` may not be installed.
if readelf -l "$shimctl" | grep -q 'program interpreter'; then
    echo "shimctl is not static" >&2
    exit 1
fi
s=$(stat -c %s "$shimctl")
h=$(stat -c %s "$hellobin")
d=$((s - h))
printf 'hello-world (static): %8d bytes (%d KiB)\n' "$h" $((h / 1024))
printf 'shimctl     (static): %8d bytes (%d KiB)\n' "$s" $((s / 1024))
printf 'difference          : %8d bytes (%d KiB; budget 400 KiB)\n' "$d" $((d / 1024))
[ "$d" -le $((400 * 1024)) ] || { echo "over budget" >&2; exit 1; }
