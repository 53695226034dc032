#!/usr/bin/env bash
# The project's whole test run: formatting, lints, docs, tests, fuzz smoke.
# Prints how long each stage took. Usage: ci/test.sh  (SKIP_FUZZ=1 to skip fuzzing)
set -euo pipefail
cd "$(dirname "$0")/.."

summary=()
stage() {
    local name=$1
    shift
    local start=$SECONDS
    echo "==> ${name}: $*"
    if "$@"; then
        summary+=("$(printf '%-8s %4ds  ok' "$name" $((SECONDS - start)))")
    else
        local rc=$?
        summary+=("$(printf '%-8s %4ds  FAILED (exit %d)' "$name" $((SECONDS - start)) "$rc")")
        printf '%s\n' "--- stage times ---" "${summary[@]}"
        exit "$rc"
    fi
}

stage fmt cargo fmt --all --check
stage clippy cargo clippy --workspace --all-targets --locked -- -D warnings
# The libraries' API docs (the cli's generated protos carry upstream comments).
stage doc env RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked -p ttrpc-core -p ttrpc-std -p ttrpc-mio --features ttrpc-core/codegen
stage build cargo test --workspace --locked --no-run
# The release shimctl (panic = "unwind") that cli/tests/serve.rs drives.
stage release cargo build --release --locked -p shimctl
# The static shimctl against its budget: at most 400 KiB over a static
# hello-world built the same way (cli/README.md).
stage size cli/size-check.sh
stage test cargo test --workspace --locked
if [[ "${SKIP_FUZZ:-0}" != 1 && -x ci/fuzz-smoke.sh ]]; then
    stage fuzz ci/fuzz-smoke.sh
fi
printf '%s\n' "--- stage times ---" "${summary[@]}"
