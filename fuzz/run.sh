#!/usr/bin/env bash
# Runs every fuzz target (or those named after SECONDS) for SECONDS each, one after another,
# at the lowest CPU priority. Needs the nightly toolchain and `cargo install cargo-fuzz`.
#   fuzz/run.sh 600            # all four targets, ten minutes each
#   fuzz/run.sh 60 sse config  # two of them, a minute each
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config sse jsonrpc translate)

# Safe Rust: AddressSanitizer adds nothing but cost; debug assertions (overflow) stay on.
flags=(-s none)

max_len() {
    case $1 in
        config) echo 16384 ;;
        sse) echo 8192 ;;
        *) echo 4096 ;;
    esac
}

nice -n 19 cargo +nightly fuzz build "${flags[@]}"
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "regressions/$target" "artifacts/$target"
    dict=()
    [ -f "dict/$target.dict" ] && dict=(-dict="dict/$target.dict")
    echo "== $target: ${seconds}s"
    # Regressions are read too, so a fixed crash that comes back fails at once.
    nice -n 19 cargo +nightly fuzz run "${flags[@]}" "$target" \
        "corpus/$target" "regressions/$target" -- \
        -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 ${dict[@]+"${dict[@]}"}
done
