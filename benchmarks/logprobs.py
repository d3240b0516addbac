"""Peak memory and time of token log-probs / entropies against TRL's ``selective_log_softmax`` and
a plain ``log_softmax().gather()``, all measured in the same run.

    python benchmarks/logprobs.py [--B 8] [--L 1025] [--V 32000] [--d 512] [--repeat 3]
                                  [--dtypes float32 bfloat16] [--backward]

B·(L−1) = 8192 scored tokens (every token but the first), V = 32 000 by default.

Peak memory: each path runs in a fresh subprocess. After the inputs are built, the process's
resident-set high-water mark is reset (``/proc/self/clear_refs`` ← 5) and the extra peak is
``VmHWM − VmRSS`` read after one call (a warm-up call on tiny inputs first, so that lazily
loaded code is not counted): the real memory the call touched beyond its inputs,
allocator caches and temporaries included (torch's CPU allocator keeps no statistics, and the
profiler's memory events miss what ATen frees inside one op). The logits (or, for the
hidden-state path, the size the logits would have) are the yardstick: "× logits".

Time: in this process, the paths interleaved round by round (``--repeat`` rounds after a
warm-up call), the median per path, so a change in the machine's load hits every path alike.
"max |err|" is each path's largest error on the first sample against a float64 log-softmax of
the same logits (for ``hidden_pgmath``: of ``hidden @ weightᵀ`` rounded to the dtype, as autograd's
logits are). Baselines:

* ``trl``: ``trl.trainer.utils.selective_log_softmax(logits[:, :-1], tokens[:, 1:])``
  (row-wise logsumexp for float32, a per-sample log_softmax for bf16);
* ``trl_entropy``: ``trl.trainer.utils.entropy_from_logits(logits[:, :-1])`` (128-row chunks of
  log_softmax, exp, sum; on the CPU no fused kernel) — the baseline of ``pgmath_entropy``;
* ``gather``: ``log_softmax(logits[:, :-1].float(), -1).gather(-1, tokens[:, 1:])``;
* ``v0``: pgmath's previous token_log_probs (copy the scored rows, upcast, full log_softmax);
* hidden-state paths against ``hidden @ weightᵀ`` followed by TRL (``linear+trl``).

With ``--backward`` each call also runs the backward pass of the sum of the log-probs (the
gradient of the logits, one logits' worth, is then part of every path's peak).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

PATHS = ("pgmath", "pgmath_entropy", "trl", "trl_entropy", "gather", "v0", "hidden_pgmath", "hidden_linear_trl")


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _v0(logits, tokens, mask):
    """pgmath.llm.token_log_probs before issue 17 (copy, upcast, full log-softmax)."""
    m_next = mask[:, 1:]
    z = logits[:, :-1][m_next].float()
    tgt = tokens[:, 1:][m_next].long()
    lp = torch.log_softmax(z, -1).gather(1, tgt.unsqueeze(1)).squeeze(1)
    out = torch.zeros(mask.shape[0], mask.shape[1] - 1, device=logits.device).masked_scatter(m_next, lp)
    return torch.cat([torch.zeros_like(out[:, :1]), out], 1)


def _make(path: str, args, dtype: torch.dtype):
    """``(call, logits bytes, logits or None)``: the path as a thunk on freshly built inputs."""
    from pgmath.llm import token_entropy, token_log_probs, token_log_probs_from_hidden

    g = torch.Generator().manual_seed(0)
    B, L, V, d = args.B, args.L, args.V, args.d
    tokens = torch.randint(0, V, (B, L), generator=g)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[:, 0] = False
    logits_bytes = B * L * V * torch.finfo(dtype).bits // 8
    grad = args.backward
    if path.startswith("hidden"):
        hidden = (torch.randn(B, L, d, generator=g) / d**0.5).to(dtype).requires_grad_(grad)
        weight = torch.randn(V, d, generator=g).to(dtype).requires_grad_(grad)
        if path == "hidden_pgmath":
            def run():
                return token_log_probs_from_hidden(hidden, weight, tokens, mask, dtype=torch.float32)
        else:
            from trl.trainer.utils import selective_log_softmax

            def run():
                return selective_log_softmax(hidden @ weight.T, tokens)
        leaves = (hidden, weight)
        logits = (hidden[:1].detach() @ weight.detach().T) if path == "hidden_pgmath" else None  # first sample
    else:
        logits = (3 * torch.randn(B, L, V, generator=g)).to(dtype).requires_grad_(grad)
        leaves = (logits,)
        if path == "pgmath":
            def run():
                return token_log_probs(logits, tokens, mask, dtype=torch.float32)
        elif path == "pgmath_entropy":
            def run():
                return token_entropy(logits, mask, dtype=torch.float32)
        elif path == "trl":
            from trl.trainer.utils import selective_log_softmax

            def run():
                return selective_log_softmax(logits[:, :-1], tokens[:, 1:])
        elif path == "trl_entropy":
            from trl.trainer.utils import entropy_from_logits

            def run():
                return entropy_from_logits(logits[:, :-1])
        elif path == "gather":
            def run():
                return torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
        elif path == "v0":
            def run():
                return _v0(logits, tokens, mask)
        else:
            raise ValueError(path)

    def call():
        if grad:
            out = run()
            out.float().sum().backward()
            for x in leaves:
                x.grad = None
            return out
        with torch.no_grad():
            return run()

    return call, logits_bytes, logits


def child(path: str, dtype_name: str, args) -> dict:
    dtype = getattr(torch, dtype_name)
    tiny = argparse.Namespace(**{**vars(args), "B": 1, "L": 3, "V": 50, "d": 8})
    _make(path, tiny, dtype)[0]()  # warm-up: lazy imports and kernels load before the measurement
    call, logits_bytes, _ = _make(path, args, dtype)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    rss0 = _status("VmRSS")
    t0 = time.perf_counter()
    out = call()
    first = time.perf_counter() - t0
    peak = _status("VmHWM") - rss0
    del out
    return {"path": path, "dtype": dtype_name, "peak_extra": peak, "logits_bytes": logits_bytes, "first_s": first}


def timings(paths: list[str], dtype: torch.dtype, args) -> dict[str, dict[str, float]]:
    """Median seconds per call of every path, the paths interleaved round by round (so a change
    in the machine's load hits them alike), and each path's max |error| against a float64
    log-softmax of the same (rounded) logits on the first sample."""
    calls = {p: _make(p, args, dtype) for p in paths}
    outs = {p: c[0]() for p, c in calls.items()}  # warm-up, and the values for the error
    times: dict[str, list[float]] = {p: [] for p in paths}
    for _ in range(args.repeat):
        for p in paths:
            t0 = time.perf_counter()
            calls[p][0]()
            times[p].append(time.perf_counter() - t0)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, args.V, (args.B, args.L), generator=g)
    res = {}
    for p in paths:
        err = float("nan")
        if p in ("pgmath", "trl", "gather", "v0", "hidden_pgmath"):
            logits = calls[p][2]
            want = torch.log_softmax(logits[0, :-1].double(), -1).gather(-1, tokens[0, 1:, None]).squeeze(-1)
            got = outs[p][0]
            got = got[1:] if got.shape[-1] == args.L else got
            err = float((got.detach().double() - want).abs().max())
        res[p] = {"median_s": statistics.median(times[p]), "err": err}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--B", type=int, default=8)
    ap.add_argument("--L", type=int, default=1025)
    ap.add_argument("--V", type=int, default=32_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--paths", nargs="+", default=list(PATHS))
    ap.add_argument("--backward", action="store_true")
    ap.add_argument("--child", nargs=2, metavar=("PATH", "DTYPE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args)))
        return
    load = os.getloadavg()
    print(f"B={args.B} L={args.L} (scored tokens {args.B * (args.L - 1)}) V={args.V} d={args.d}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average (1/5/15 min) "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
          f"{'forward + backward' if args.backward else 'forward (no_grad)'}")
    passthrough = ["--B", str(args.B), "--L", str(args.L), "--V", str(args.V), "--d", str(args.d),
                   "--repeat", str(args.repeat), *(["--backward"] if args.backward else [])]
    for dt in args.dtypes:
        rows = []
        for path in args.paths:
            cmd = [sys.executable, __file__, "--child", path, dt, *passthrough]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                print(f"{path} {dt}: failed: {res.stderr.strip().splitlines()[-1] if res.stderr else res.returncode}")
                continue
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        if not rows:
            continue
        t = timings([r["path"] for r in rows], getattr(torch, dt), args)
        for r in rows:
            r.update(t[r["path"]])
        base = {r["path"]: r for r in rows}
        print(f"\n{dt} logits ({rows[0]['logits_bytes'] / 2**20:.0f} MiB); time: median of {args.repeat} interleaved calls")
        print(f"{'path':18s} {'peak extra MiB':>14s} {'x logits':>9s} {'median s':>9s} {'vs trl':>7s} "
              f"{'vs linear+trl':>13s} {'max |err| (f64)':>16s}")
        for r in rows:
            hid = r["path"].startswith("hidden")
            ref = base.get("hidden_linear_trl" if hid else "trl_entropy" if "entropy" in r["path"] else "trl")
            ratio = f"{ref['median_s'] / r['median_s']:.2f}x" if ref else ""
            print(f"{r['path']:18s} {r['peak_extra'] / 2**20:14.1f} {r['peak_extra'] / r['logits_bytes']:9.3f} "
                  f"{r['median_s']:9.3f} {'' if hid else ratio:>7s} {ratio if hid else '':>13s} {r['err']:16.1e}")
        print("load average at the end of this dtype: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
