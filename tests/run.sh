#!/usr/bin/env bash
# Runs every check and test of the project. Safe to run again: installs are idempotent.
# Usage: tests/run.sh          (CI runs exactly this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

# A target dir outside the checkout keeps repeat runs on one machine incremental.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tollgate-target}"
# Shared 2-core machines are slow and noisy: give convergence checks more time.
export TOLLGATE_TEST_PATIENCE="${TOLLGATE_TEST_PATIENCE:-3}"

# The walkthrough's seed configs live in the read-only `shared/` folder beside the project's
# repository: beside this checkout, or beside the repository it was cloned from.
if [ -z "${TOLLGATE_SEED_DIR:-}" ]; then
    for base in .. "$(git config --get remote.origin.url 2>/dev/null)/.."; do
        if [ -d "$base/shared/seed/configs" ]; then
            TOLLGATE_SEED_DIR="$(cd "$base/shared/seed/configs" && pwd)"
            break
        fi
    done
fi
if [ -z "${TOLLGATE_SEED_DIR:-}" ]; then
    echo "cannot find the walkthrough's seed configs (../shared/seed/configs); set TOLLGATE_SEED_DIR" >&2
    exit 1
fi
export TOLLGATE_SEED_DIR

echo "== format"
cargo fmt --all -- --check
echo "== lint"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== dependencies: bans, licenses, sources (deny.toml)"
command -v cargo-deny >/dev/null || cargo install cargo-deny --locked
cargo deny check bans licenses sources
echo "== build (the e2e tests spawn these binaries)"
cargo build --workspace --bins --locked
echo "== tests"
cargo test --workspace --locked

echo "== interop: the official OpenAI, Anthropic and MCP Python SDKs, the Codex CLI, the UI in Chromium, Prometheus, Kubernetes manifests"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
[ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ] || missing="$missing prometheus"
# deploy/kubernetes is rendered with kustomize (kubectl's built-in one will do).
command -v kubectl >/dev/null || command -v kustomize >/dev/null || missing="$missing kubernetes-client"
if [ -n "$missing" ]; then
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# OpenAI's Codex CLI (npm), pinned: the Responses API client of tests/interop/test_codex.py.
CODEX_VERSION=0.171.0
CODEX_DIR="$HOME/.cache/tollgate-codex"
command -v npm >/dev/null || { $SUDO apt-get update -qq; $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }
if [ "$("$CODEX_DIR/node_modules/.bin/codex" --version 2>/dev/null)" != "codex-cli $CODEX_VERSION" ]; then
    npm install --silent --no-audit --no-fund --prefix "$CODEX_DIR" "@openai/codex@$CODEX_VERSION"
fi
export TOLLGATE_CODEX="$CODEX_DIR/node_modules/.bin/codex"
VENV="${TOLLGATE_VENV:-$HOME/.cache/tollgate-venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
TOLLGATE_BIN_DIR="$CARGO_TARGET_DIR/debug" "$VENV/bin/python" -m pytest tests/interop -q -p no:cacheprovider
