"""Speed of pgmath.llm's hot paths, as ratios against baselines measured in the same run.

    python benchmarks/llm.py [--device cpu] [--repeat 5]

* token_log_probs vs (a) the common idiom ``log_softmax(logits[:, :-1]).gather(...)`` (which
  materialises a full [B, L, V] log-softmax) and (b) the reference double loop (small size only).
* group_advantages / rloo_advantages vs their reference loops.
* token_gae vs a per-row Python loop.
"""

from __future__ import annotations

import argparse
import time

import torch

from pgmath.llm import (
    group_advantages,
    group_advantages_reference,
    rloo_advantages,
    rloo_advantages_reference,
    token_gae,
    token_log_probs,
    token_log_probs_reference,
)


def _time(fn, repeat: int, device: torch.device) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def _idiom(logits, tokens, mask):
    lp = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
    return torch.cat([torch.zeros_like(lp[:, :1]), lp], 1) * mask


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    dev = torch.device(args.device)
    g = torch.Generator(device=dev).manual_seed(0)
    print(f"device {dev}, torch threads {torch.get_num_threads()}")

    for B, L, V in ((8, 256, 32_000), (4, 1024, 32_000)):
        logits = torch.randn(B, L, V, generator=g, device=dev)
        tokens = torch.randint(0, V, (B, L), generator=g, device=dev)
        mask = torch.ones(B, L, dtype=torch.bool, device=dev)
        mask[:, : L // 4] = False
        args_ = (logits, tokens, mask)
        t_fast = _time(lambda a=args_: token_log_probs(*a), args.repeat, dev)
        t_idiom = _time(lambda a=args_: _idiom(*a), args.repeat, dev)
        print(f"token_log_probs [B={B}, L={L}, V={V}]: {t_fast * 1e3:.1f} ms; "
              f"log_softmax+gather idiom {t_idiom * 1e3:.1f} ms; ratio idiom/fast = {t_idiom / t_fast:.2f}")
    B, L, V = 4, 32, 50
    logits = torch.randn(B, L, V, generator=g, device=dev)
    tokens = torch.randint(0, V, (B, L), generator=g, device=dev)
    t_fast = _time(lambda: token_log_probs(logits, tokens), args.repeat, dev)
    t_ref = _time(lambda: token_log_probs_reference(logits, tokens), 1, dev)
    print(f"token_log_probs [B={B}, L={L}, V={V}]: {t_fast * 1e3:.2f} ms; reference loop "
          f"{t_ref * 1e3:.1f} ms; ratio loop/fast = {t_ref / t_fast:.0f}")

    r = torch.randn(1024, 16, generator=g, device=dev, dtype=torch.float64)
    for name, fast, ref in (("group_advantages", group_advantages, group_advantages_reference),
                            ("rloo_advantages", rloo_advantages, rloo_advantages_reference)):
        tf = _time(lambda f=fast: f(r), args.repeat, dev)
        tr = _time(lambda f=ref: f(r[:64]), 1, dev) * (1024 / 64)
        print(f"{name} [G=1024, K=16]: reference loop / fast = {tr / tf:.0f}x (loop timed on 64 groups, scaled)")

    B, L = 256, 512
    rew = torch.randn(B, L, generator=g, device=dev, dtype=torch.float64)
    val = torch.randn(B, L, generator=g, device=dev, dtype=torch.float64)
    m = torch.ones(B, L, dtype=torch.bool, device=dev)
    m[:, :100] = False
    tf = _time(lambda: token_gae(rew, val, m, gamma=1.0, lam=0.95), args.repeat, dev)

    def loop():
        out = torch.zeros_like(rew)
        for b in range(8):
            a, vn = 0.0, 0.0
            for t in range(L - 1, -1, -1):  # backward over one row
                if m[b, t]:
                    a = float(rew[b, t]) + vn - float(val[b, t]) + 0.95 * a
                    vn = float(val[b, t])
                    out[b, t] = a
        return out

    tl = _time(loop, 1, dev) * (B / 8)
    print(f"token_gae [B={B}, L={L}]: per-row Python loop / fast = {tl / tf:.0f}x (loop timed on 8 rows, scaled)")


if __name__ == "__main__":
    main()
