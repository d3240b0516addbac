#!/usr/bin/env bash
# The wheel as a user gets it: build it (`pip wheel .`), install it into a fresh venv that has
# only torch, check that the core imports and computes GAE with none of the optional packages,
# then add the extras `pgmath verify` needs and run the commands from the installed copy
# (not the source tree): `pgmath verify --quick`, `python -m pgmath.proofs`, `pgmath check`.
# About 2 minutes on 2 cores. Called by .ci/run; runs alone too: bash .ci/wheel.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python -m pip wheel --no-deps -q -w "$work/dist" .
wheel="$(ls "$work"/dist/pgmath-*.whl)"
python -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install -q --no-compile "torch==2.13.0"   # the pinned CPU build first (else pip pulls CUDA)
"$py" -m pip install -q --no-compile "$wheel"       # the core: torch, numpy, numba

cd "$work"   # away from the checkout, so that only the installed copy can be imported
"$py" - <<'PY'
import importlib.util

import torch

import pgmath

assert "site-packages" in pgmath.__file__, pgmath.__file__
r = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
f = torch.zeros(64, 8, dtype=torch.bool)
err = (pgmath.gae(r, r, r, f, f, gamma=0.99, lam=0.95)
       - pgmath.gae_reference(r, r, r, f, f, gamma=0.99, lam=0.95)).abs().max()
assert err < 1e-5, err
# sympy is not listed: torch itself requires it
present = [m for m in ("hypothesis", "pytest", "gymnasium", "scipy", "matplotlib", "rich", "tqdm",
                       "transformers") if importlib.util.find_spec(m) is not None]
assert not present, f"the core install pulled optional packages: {present}"
try:
    import pgmath.testing  # noqa: F401
except ImportError as exc:
    assert "pip install 'pgmath[testing]'" in str(exc), exc
else:
    raise AssertionError("pgmath.testing imported without hypothesis")
print("wheel: core install OK (gae == reference, no optional packages, extras named)")
PY

"$py" -m pip install -q --no-compile "${wheel}[verify]"
"$work/venv/bin/pgmath" verify --quick > verify.txt || { cat verify.txt; exit 1; }
tail -n 2 verify.txt
# piped into a file, the table must be complete: one row ending in its verdict per check
n="$(sed -n 's#^[0-9]*/\([0-9]*\) checks passed$#\1#p' verify.txt)"
rows="$(grep -cE ' (PASS|FAIL)$' verify.txt)"
[ -n "$n" ] && [ "$n" = "$rows" ] || { echo "wheel: $rows complete rows for $n checks"; exit 1; }
"$py" -m pgmath.proofs > proofs.txt || { cat proofs.txt; exit 1; }
tail -n 1 proofs.txt
"$work/venv/bin/pgmath" check --help > /dev/null
"$work/venv/bin/pgmath" check gae pgmath:gae --max-examples 10
echo "wheel: OK"
