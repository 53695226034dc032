#!/usr/bin/env bash
# Fuzz smoke test: build every target in fuzz/ once, run each for
# FUZZ_SECONDS (default 25) on a scratch copy of its checked-in corpus, and
# fail if any of them crashes. About 5 x (FUZZ_SECONDS + 2 s) plus the build
# (warm: seconds; cold: 2.5-4 min on 2 cores): under the 6-minute budget.
# A clean-clone CI run took 395 s at 30 s a target (235 s of it the build,
# on a busy machine), hence 25.
#
#   ci/fuzz-smoke.sh                     # all targets, 25 s each
#   FUZZ_SECONDS=10 ci/fuzz-smoke.sh     # quicker
#   FUZZ_TARGETS="server_input" ci/fuzz-smoke.sh
#   FUZZ_SANITIZER=none ci/fuzz-smoke.sh # skip ASan on nightly (2-3x the runs)
#
# Nightly is used when installed (AddressSanitizer, cargo-fuzz's default);
# otherwise stable with `-s none`. Builds are release (-O) with debug
# assertions and overflow checks on (-a).
set -euo pipefail

FUZZ_SECONDS="${FUZZ_SECONDS:-25}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

toolchain=()
build_flags=(-O -a)
if cargo +nightly --version >/dev/null 2>&1; then
    toolchain=(+nightly)
    if [[ -n "${FUZZ_SANITIZER:-}" ]]; then
        build_flags+=(-s "$FUZZ_SANITIZER")
    fi
else
    build_flags+=(-s "${FUZZ_SANITIZER:-none}")
fi
fuzz=(cargo "${toolchain[@]}" fuzz)

targets=()
if [[ -n "${FUZZ_TARGETS:-}" ]]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    mapfile -t targets < <("${fuzz[@]}" list)
fi

echo "== building ${targets[*]} (${fuzz[*]} build ${build_flags[*]})"
start=$SECONDS
"${fuzz[@]}" build "${build_flags[@]}"
echo "== build took $((SECONDS - start)) s"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
marker="$scratch/.started"
touch "$marker"

failed=()
for t in "${targets[@]}"; do
    # Fuzz a copy so the checked-in corpus is never polluted.
    mkdir -p "$scratch/$t"
    if [[ -d "corpus/$t" ]]; then
        cp -R "corpus/$t/." "$scratch/$t/"
    fi
    log="$scratch/$t.log"
    start=$SECONDS
    status=0
    "${fuzz[@]}" run "${build_flags[@]}" "$t" "$scratch/$t" -- \
        -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -timeout=20 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    took=$((SECONDS - start))
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
    speed="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)"
    echo "== $t: ${took} s, ${runs:-?} runs, ${speed:-?} exec/s"
    if [[ $status -ne 0 ]]; then
        failed+=("$t")
        echo "!! $t FAILED (exit $status):"
        why="$(grep -E -A3 'panicked at|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)' "$log" | head -n 12 || true)"
        if [[ -z "$why" ]]; then
            why="$(tail -n 25 "$log")"
        fi
        sed 's/^/   | /' <<<"$why"
        while IFS= read -r crash; do
            echo "!! crash file: fuzz/$crash"
            echo "   reproduce:  cd fuzz && ${fuzz[*]} run ${build_flags[*]} $t $crash"
            echo "   minimise:   cd fuzz && ${fuzz[*]} tmin ${build_flags[*]} $t $crash"
        done < <(find "artifacts/$t" -type f -newer "$marker" 2>/dev/null)
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "== FAILED: ${failed[*]}"
    exit 1
fi
echo "== all ${#targets[@]} fuzz targets ran ${FUZZ_SECONDS} s each without a crash"
