"""GAE speed: pgmath's fast paths against named baselines, measured in the same run.

Baselines (all computing the same advantages, float32, time-major [T, B]):
  torch-loop   a per-step torch loop over T (pgmath.gae_reference)
  numpy-loop   a per-step NumPy loop over T — what Stable-Baselines3's RolloutBuffer does
  copy-inputs  the memory bound: the time to copy each of the five inputs once (more bytes
               than GAE must move: GAE reads them once and writes one array); a NumPy memcpy on
               CPU, a torch clone on CUDA
  torch-scan   pgmath's own pure-torch blocked scan (backend="torch"): the fallback when numba
               is not installed, so "vs torch-scan" is what numba buys on CPU
  lfilter      scipy.signal.lfilter on δ (the discounted-cumsum trick; it knows no episode
               boundaries, so it is timed on a rollout without any, for reference only)

Also checks exactness: float64 fast path == reference to 1e-10 at every size.

Run:  python benchmarks/gae.py            (CPU; add --device cuda on a GPU machine)
      python benchmarks/gae.py --format markdown   (or plain / json; piped output is complete
                                                    plain text by default)
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import scipy.signal
import torch

from pgmath import gae, gae_reference, td_errors
from pgmath.rollouts import random_rollout
from pgmath.scan import numba_available
from pgmath.tables import add_format_argument, print_table

GAMMA, LAM = 0.99, 0.95


def timeit(fn, repeats: int, sync=lambda: None) -> float:
    """Median wall time of ``repeats`` calls (after one warm-up call)."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def numpy_loop_gae(r, v, nv, term, trunc, gamma, lam):
    """The Stable-Baselines3-style per-step NumPy loop, in pgmath's conventions."""
    T = r.shape[0]
    adv = np.zeros_like(r)
    last = np.zeros_like(r[0])
    not_term = 1.0 - term.astype(r.dtype)
    goes_on = not_term * (1.0 - trunc.astype(r.dtype))
    for t in reversed(range(T)):
        delta = r[t] + gamma * nv[t] * not_term[t] - v[t]
        cont = goes_on[t] if t < T - 1 else 0.0
        last = delta + gamma * lam * cont * last
        adv[t] = last
    return adv


def bench_size(T: int, B: int, device: torch.device, repeats: int) -> dict:
    g = torch.Generator(device=device).manual_seed(0)
    shape = (T,) if B == 1 else (T, B)
    ro64 = random_rollout(T, shape[1:], p_terminate=0.01, p_truncate=0.005, dtype=torch.float64, device=device, generator=g)
    ro = type(ro64)(*(x.float() for x in ro64[:3]), ro64.terminated, ro64.truncated)
    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
    row: dict = {"T": T, "B": B}

    # exactness in float64 (every size), against the plain loop
    ref = gae_reference(*ro64, gamma=GAMMA, lam=LAM)
    row["max_err_f64"] = float((gae(*ro64, gamma=GAMMA, lam=LAM) - ref).abs().max())

    row["pgmath"] = timeit(lambda: gae(*ro, gamma=GAMMA, lam=LAM), repeats, sync)
    if device.type == "cpu" and numba_available():
        row["pgmath-torch-scan"] = timeit(lambda: gae(*ro, gamma=GAMMA, lam=LAM, backend="torch"), repeats, sync)
    arrs = [x.cpu().numpy() for x in ro]
    if device.type == "cuda":
        row["copy-inputs"] = timeit(lambda: [x.clone() for x in ro], repeats, sync)
    else:  # a plain single-threaded memcpy of each input (torch's threaded clone stalls under load)
        row["copy-inputs"] = timeit(lambda: [a.copy() for a in arrs], repeats)
    loop_reps = max(1, min(repeats, 3))
    row["torch-loop"] = timeit(lambda: gae_reference(*ro, gamma=GAMMA, lam=LAM), loop_reps, sync)
    row["numpy-loop"] = timeit(lambda: numpy_loop_gae(*arrs, GAMMA, LAM), loop_reps)
    # lfilter on δ along time (no episode boundaries), for reference
    delta = td_errors(ro.rewards, ro.values, ro.next_values, torch.zeros_like(ro.terminated), gamma=GAMMA).cpu().numpy()
    row["lfilter"] = timeit(
        lambda: scipy.signal.lfilter([1.0], [1.0, -GAMMA * LAM], delta[::-1], axis=0)[::-1], loop_reps
    )
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--sizes", default="2048x4096,2048x64,100000x1", help="comma-separated TxB")
    add_format_argument(p)
    args = p.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}, "
          f"numba {'yes' if numba_available() else 'no'}")
    rows = []
    for spec in args.sizes.split(","):
        T, B = (int(x) for x in spec.split("x"))
        rows.append(bench_size(T, B, device, args.repeats))

    columns = ("T x B", "pgmath", "torch-scan", "copy-inputs", "numpy-loop", "torch-loop", "lfilter*",
               "vs numpy", "vs torch-loop", "vs copy", "vs torch-scan", "f64 err")
    table = []
    for r in rows:
        ts = r.get("pgmath-torch-scan")
        table.append((
            f"{r['T']}x{r['B']}", f"{r['pgmath']:.2e}", f"{ts:.2e}" if ts else "-", f"{r['copy-inputs']:.2e}",
            f"{r['numpy-loop']:.2e}", f"{r['torch-loop']:.2e}", f"{r['lfilter']:.2e}",
            f"{r['numpy-loop'] / r['pgmath']:.1f}x", f"{r['torch-loop'] / r['pgmath']:.1f}x",
            f"{r['copy-inputs'] / r['pgmath']:.2f}x", f"{ts / r['pgmath']:.1f}x" if ts else "-",
            f"{r['max_err_f64']:.1e}",
        ))
    print_table(
        columns, table, fmt=args.format, justify=["right"] * len(columns),
        title="GAE, float32: median seconds per call, and speed-up of pgmath over each baseline",
        caption="* lfilter knows no episode boundaries; timed on δ without them, for reference. "
                "vs copy >= 1.00x: no slower than copying the inputs once. vs torch-scan: the "
                "numba kernel against the pure-torch fallback used when numba is missing.",
    )


if __name__ == "__main__":
    main()
