"""The toy task, the tiny transformer and short smoke runs of the GRPO / PPO trainers.

The full runs (success 0 → ≥ 90% in minutes) are not unit tests; they are recorded in
docs/llm/results.md with their commands.
"""

from __future__ import annotations

import json

import pytest
import torch

from pgmath.cli import main as cli_main
from pgmath.llm import token_log_probs
from pgmath.llm.model import TinyCausalLM
from pgmath.llm.toy import SortTask
from pgmath.llm.train import TrainConfig, generate, train


def test_sort_checker():
    task = SortTask(n_digits=3, n_values=10)
    E, P = task.eos, task.pad
    prompts = torch.tensor([[3, 1, 2, task.sep]] * 5)
    responses = torch.tensor([
        [1, 2, 3, E, P],  # exact
        [1, 2, 3, 4, E],  # one token too many
        [1, 3, 2, E, P],  # one right
        [1, 2, 3, 3, 3],  # no EOS: truncated at max_new
        [E, P, P, P, P],  # empty
    ])
    score, success, length = task.score(prompts, responses)
    assert success.tolist() == [True, False, False, False, False]
    assert length.tolist() == [3, 4, 3, 5, 0]
    torch.testing.assert_close(score, torch.tensor([1.0, 3 / 4, 1 / 3, 3 / 5, 0.0]))


def test_model_is_causal_and_values_are_aligned():
    torch.manual_seed(0)
    model = TinyCausalLM(vocab=7, max_len=8, d_model=16, n_layers=2, n_heads=2, value_head=True).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 7, (2, 8), generator=g)
    y = x.clone()
    y[:, 5] = (y[:, 5] + 1) % 7
    lx, vx = model(x)
    ly, vy = model(y)
    torch.testing.assert_close(lx[:, :5], ly[:, :5], rtol=0, atol=1e-12)  # positions < 5 unchanged
    assert (lx[:, 5] - ly[:, 5]).abs().max() > 1e-6
    # values[t] is V(tokens[<t]): changing token 5 changes values from t = 6 on only
    torch.testing.assert_close(vx[:, :6], vy[:, :6], rtol=0, atol=1e-12)
    assert (vx[:, 6] - vy[:, 6]).abs().max() > 1e-9
    assert bool((vx[:, 0] == 0).all())


def test_generate_mask_and_log_probs():
    task = SortTask(n_digits=2, n_values=4)
    torch.manual_seed(1)
    model = TinyCausalLM(task.vocab, task.max_len, d_model=16, n_layers=1, n_heads=2)
    g = torch.Generator().manual_seed(2)
    prompts = task.prompts(64, g)
    seq, mask = generate(model, prompts, task, generator=g)
    assert seq.shape == mask.shape == (64, task.max_len)
    assert not bool(mask[:, : task.prompt_len].any())
    resp, rmask = seq[:, task.prompt_len :], mask[:, task.prompt_len :]
    for b in range(64):  # the mask covers the response up to and including the first EOS
        toks = resp[b].tolist()
        n = toks.index(task.eos) + 1 if task.eos in toks else len(toks)
        assert rmask[b].tolist() == [True] * n + [False] * (len(toks) - n)
        assert all(t == task.pad for t in toks[n:])
    with torch.no_grad():
        lp = token_log_probs(model(seq)[0], seq, mask)
    assert bool((lp[mask] < 0).all()) and bool((lp[~mask] == 0).all())


@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_trainer_smoke(algo, tmp_path):
    cfg = TrainConfig(
        algo=algo, n_digits=2, n_values=4, d_model=16, n_layers=1, n_heads=2, steps=3,
        prompts_per_step=8, group_size=4, epochs=2, minibatches=2, eval_every=2, eval_prompts=32,
        progress=False, out=str(tmp_path), target=None,
    )
    threads = torch.get_num_threads()
    result = train(cfg)
    assert torch.get_num_threads() == threads  # the trainer restores torch's thread count
    hist = result["history"]
    assert len(hist) == 3
    for row in hist:
        for key in ("score", "success", "kl", "length", "loss"):
            assert torch.isfinite(torch.tensor(row[key])), (key, row)
    assert hist[0]["kl"] == pytest.approx(0.0, abs=1e-5)  # the reference is the initial policy
    assert hist[-1]["kl"] > 0  # …and the policy has moved away from it
    for name in ("metrics.json", "plots.png", "model.pt"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "metrics.json").read_text())["summary"]["algo"] == algo


def test_cli_grpo_toy_smoke(tmp_path, capsys):
    rc = cli_main([
        "train", "grpo-toy", "--out", str(tmp_path), "--steps", "2", "--n-digits", "2",
        "--n-values", "3", "--d-model", "16", "--n-layers", "1", "--prompts-per-step", "4",
        "--group-size", "2", "--no-progress", "--eval-every", "1",
    ])
    assert rc in (0, 1)  # 1: the 2-step run did not reach 90% (expected)
    assert "final_eval_success" in capsys.readouterr().out
    assert (tmp_path / "plots.png").exists()
