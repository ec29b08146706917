#!/usr/bin/env bash
# Conformance: the official OpenAI SDKs (Python `openai`, Node `openai`)
# against the real `treaty` binary serving the Frontier demo on loopback.
#
# Installs the pinned SDKs (idempotent: skipped while the pins are
# unchanged), starts `treaty demo --serve --port 0` in a fresh temp dir,
# runs both suites against it, stops that server by its PID, and then has
# an independent Python verifier check the ledger it left (verifier/).
# Prints only the test runners' output on success; install or server logs
# are shown when something fails. Exits non-zero if either suite failed.
#
#   TREATY_BIN   gateway binary (default target/debug/treaty; built if missing)
#   TREATY_VENV  Python virtualenv (default .venv at the repo root)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
here=tests/conformance
bin="${TREATY_BIN:-target/debug/treaty}"
venv="${TREATY_VENV:-.venv}"

say() { printf 'conformance: %s\n' "$*" >&2; }

# Runs a command silently; on failure shows what it printed and fails.
quietly() {
  local out
  if ! out="$("$@" 2>&1)"; then
    printf '%s\n' "$out" >&2
    say "failed: $*"
    return 1
  fi
}

# ---------------------------------------------------------------- installs

if [[ ! -x "$bin" ]]; then
  say "building $bin"
  quietly cargo build -q -p treaty
fi

requirements="$here/python/requirements.txt"
stamp="$venv/.treaty-conformance-requirements"
if [[ ! -x "$venv/bin/python" ]]; then
  quietly python3 -m venv "$venv"
fi
if ! cmp -s "$requirements" "$stamp"; then
  quietly "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$requirements"
  cp "$requirements" "$stamp"
fi

# npm writes node_modules/.package-lock.json on every install; a copy of the
# lockfile beside it says whether node_modules still matches the pins.
node_dir="$here/node"
node_stamp="$node_dir/node_modules/.treaty-conformance-lock"
if [[ ! -f "$node_dir/package-lock.json" ]]; then
  (cd "$node_dir" && quietly npm install --no-audit --no-fund)
  cp "$node_dir/package-lock.json" "$node_stamp"
elif ! cmp -s "$node_dir/package-lock.json" "$node_stamp"; then
  (cd "$node_dir" && quietly npm ci --no-audit --no-fund)
  cp "$node_dir/package-lock.json" "$node_stamp"
fi

# ------------------------------------------------------------------ server

tmp="$(mktemp -d "${TMPDIR:-/tmp}/treaty-conformance.XXXXXX")"
server_pid=""

stop_server() {
  [[ -n "$server_pid" ]] || return 0
  if kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    # Graceful shutdown finishes in-flight requests; bound it.
    for _ in $(seq 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
      say "gateway (pid $server_pid) ignored SIGTERM for 5 s; killing it"
      kill -KILL "$server_pid" 2>/dev/null || true
    fi
  fi
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

show_server_log() {
  say "gateway log (last 40 lines):"
  tail -n 40 "$tmp/server.log" >&2 || true
}

cleanup() {
  stop_server
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$bin" demo --serve --port 0 --dir "$tmp/demo" --keys-out "$tmp/keys.json" \
  >"$tmp/server.log" 2>&1 &
server_pid=$!

url=""
for _ in $(seq 300); do # 30 s
  url="$(sed -n 's/^TREATY_GATEWAY_URL=//p' "$tmp/server.log")"
  [[ -n "$url" ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    say "the gateway exited before it was ready"
    show_server_log
    exit 1
  fi
  sleep 0.1
done
if [[ -z "$url" ]]; then
  say "the gateway printed no TREATY_GATEWAY_URL= line within 30 s"
  show_server_log
  exit 1
fi

export TREATY_BASE_URL="$url/v1"
export TREATY_KEYS_FILE="$tmp/keys.json"

# ------------------------------------------------------------------ suites

failed=0
PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider "$here/python" \
  || failed=1
node --test --test-reporter=spec "$node_dir/" || failed=1

# The ledger's evidence, checked by a verifier that is not Treaty's code:
# after the gateway stopped (and signed its last checkpoint), Python with
# `cryptography` checks a checkpoint, an inclusion proof and a receipt.
stop_server
TREATY_BIN="$bin" TREATY_DEMO_DIR="$tmp/demo" PYTHONDONTWRITEBYTECODE=1 \
  "$venv/bin/python" -m pytest -q -p no:cacheprovider "$here/verifier" || failed=1

if [[ "$failed" -ne 0 ]]; then
  show_server_log
  exit 1
fi
