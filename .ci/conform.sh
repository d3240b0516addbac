#!/usr/bin/env bash
# Install the RL libraries that `pgmath conform` checks (CPU builds, torch pinned) and run it on
# each, writing the records (JSON, Markdown) to $CONFORM_OUT (default: a temporary folder). Called by .ci/run.
#
# A library that does not conform is a *finding* (docs/testing/conformance.md), not a CI failure:
# exit status 1 of `pgmath conform` is accepted; 2 (library missing after install) and anything
# else (a crash of pgmath) fail CI.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${CONFORM_OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
TORCH="torch==2.13.0"   # repeated on every pip line: a bare dependency on torch would pull CUDA
PIP="python -m pip install -q"
start=$SECONDS

$PIP "torchrl==0.14.1" "stable-baselines3==2.9.2" "gymnasium==1.4.0" "$TORCH"
$PIP "rlax==0.1.9" "jax==0.10.2" "jaxlib==0.10.2" "$TORCH"
$PIP "trl==1.16.0" "$TORCH"
# verl and OpenRLHF pin GPU stacks (vllm, flash-attn): installed without dependencies, plus the
# few small modules that importing the checked modules needs
$PIP --no-deps "verl==0.9.1" "openrlhf==0.11.2" "ray==2.40.0" "deepspeed==0.19.8" "$TORCH"
$PIP "msgpack" "protobuf" "omegaconf" "codetiming" "hjson" "einops" "py-cpuinfo" "$TORCH"
echo "conform: libraries installed in $((SECONDS - start)) s"

for lib in torchrl trl verl openrlhf rlax sb3; do
  t0=$SECONDS
  rc=0
  python -m pgmath conform "$lib" --max-examples 30 --json "$OUT/$lib.json" --markdown "$OUT/$lib.md" || rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
    echo "conform: pgmath conform $lib exited $rc" >&2
    exit "$rc"
  fi
  echo "conform: $lib done in $((SECONDS - t0)) s (exit $rc)"
done
echo "conform: total $((SECONDS - start)) s"
