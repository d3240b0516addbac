"""An autoregressive policy small enough to enumerate: exact objectives and exact gradients.

The policy answers one of P prompts with a sequence y = (y₀, …, y_{L−1}) of L tokens from a
vocabulary of V (default V = 4, L = 3: 64 sequences). It is tabular over prefixes — one logit
vector θ[p, node] ∈ ℝⱽ per prompt and prefix node (the prefix y<ₜ), Σ_{t<L} Vᵗ nodes — so

    π(y | p) = Πₜ softmax(θ[p, node(y<ₜ)])[yₜ]

and every expectation over sequences is a finite sum that autograd differentiates exactly:

    J(θ)            = Σ_p w_p Σ_y π(y|p) R(p, y)
    KL(π ‖ π_ref)   = Σ_p w_p Σ_y π(y|p) [log π(y|p) − log π_ref(y|p)]          (sequence level)
    KL(π_ref ‖ π)   = Σ_p w_p Σ_y π_ref(y|p) [log π_ref(y|p) − log π(y|p)]

The expected gradient of a per-token estimator kₜ *used as a loss term* is

    E_{y~π}[∇θ Σₜ kₜ(y)] = ∇θ Σ_y sg(π(y)) Σₜ kₜ(y)        (sg = stop-gradient)

— the sampling distribution is held fixed, the gradient flows only through log π inside kₜ,
which is what a trainer that adds β·k to its loss computes. The per-conditional KLs the
estimators turn out to match are computed *independently* of the estimators, by summing over
the vocabulary at every prefix node with the prefix probabilities held fixed:

    C_rev(θ) = Σ_p w_p Σ_nodes sg(P_π(node)) KL(π(·|node) ‖ π_ref(·|node))
    C_fwd(θ) = Σ_p w_p Σ_nodes sg(P_π(node)) KL(π_ref(·|node) ‖ π(·|node))

Results (exact, pinned in ``tests/test_llm_oracle.py`` and the verify rows; see
``docs/llm/kl_placement.md``):

* k1 as loss → 0;  k2 as loss → ∇C_rev;  k3 as loss → ∇C_fwd.
* L = 1: ∇C_rev = ∇KL(π‖π_ref) and ∇C_fwd = ∇KL(π_ref‖π) (the field's belief holds).
* L ≥ 2: neither equals the gradient of a sequence-level KL. ∇KL(π‖π_ref) =
  E[Σₜ ∇log πₜ Σ_{t'≥t} ℓ_{t'}] while k2 keeps only t' = t; both k2 and k3 agree with
  ∇KL(π‖π_ref) to first order in θ − θ_ref (the difference is O(‖θ − θ_ref‖²)).
* k1 in the reward with the reward-to-go (score function): exactly ∇KL(π‖π_ref); with the
  immediate per-token penalty only (no reward-to-go) it equals the k2-as-loss gradient.

Variable-length responses (``eos=`` a token id): a response stops at its first EOS token or at
L tokens, so the N distinct responses have lengths 1 … L (EOS appears only last); ``mask[n, t]``
is false after the end, and every per-token tensor is 0 there. Nodes whose prefix contains EOS
are never reached (their logits get zero gradient); the parameter layout is unchanged. The
sequence-level and per-conditional KLs above then run over responses of different lengths, and
length-normalised objectives are measurable (``J_len = Σ_p w_p Σ_y π(y|p) R(p, y)/|y|``, the
target of :func:`pgmath.llm.audit_loss`).

Checked by: ``tests/test_llm_oracle.py``; ``tests/test_llm_audit.py`` (EOS tree: distribution,
masks, an independent enumeration); verify rows in :mod:`pgmath.llm.verify`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch

from pgmath.kl import kl_categorical
from pgmath.llm.kl import token_kl

__all__ = ["TreePolicy"]


def _responses(vocab: int, length: int, eos: int | None) -> list[tuple[int, ...]]:
    """Every distinct response: all Vᴸ sequences without EOS; with EOS, the sequences of length
    1 … L that contain EOS only as their last token (lengths < L end with it)."""
    if eos is None:
        return list(itertools.product(range(vocab), repeat=length))
    other = [v for v in range(vocab) if v != eos]
    out: list[tuple[int, ...]] = []
    for n in range(1, length + 1):
        for prefix in itertools.product(other, repeat=n - 1):
            out.append((*prefix, eos))
            if n == length:
                out += [(*prefix, v) for v in other]
    return sorted(out)


class TreePolicy:
    """Tabular autoregressive policy over ``vocab`` tokens, length ``length`` (or 1 … ``length``
    with an ``eos`` token), ``prompts`` prompts.

    Parameters are passed explicitly (``theta`` of shape :attr:`param_shape`), so every method is
    a pure function of θ that autograd differentiates.

    Attributes:
      sequences: ``[N, L]`` all N responses (lexicographic order; N = Vᴸ without EOS), padded
        with ``eos`` after the end.
      mask: ``[N, L]`` true at the response's tokens (all true without EOS).
      lengths: ``[N]`` the number of tokens of each response.
      nodes: ``[N, L]`` index of the prefix node y<ₜ of sequence n at step t (0 after the end).
      depth: ``[n_nodes]`` the length t of each node's prefix.
    """

    def __init__(
        self,
        vocab: int = 4,
        length: int = 3,
        prompts: int = 1,
        *,
        prompt_weights: torch.Tensor | None = None,
        eos: int | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ) -> None:
        for name, v in (("vocab", vocab), ("length", length), ("prompts", prompts)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if vocab < 2:
            raise ValueError(f"vocab must be >= 2, got {vocab}")
        if vocab**length > 4096:
            raise ValueError(f"vocab ** length = {vocab**length} sequences is too many to enumerate (limit 4096)")
        if eos is not None and (isinstance(eos, bool) or not isinstance(eos, int) or not 0 <= eos < vocab):
            raise ValueError(f"eos must be None or a token id in [0, vocab) = [0, {vocab}), got {eos!r}")
        self.V, self.L, self.P, self.eos = vocab, length, prompts, eos
        self.dtype, self.device = dtype, torch.device(device)
        responses = _responses(vocab, length, eos)
        lengths = torch.tensor([len(r) for r in responses], dtype=torch.long)
        pad = 0 if eos is None else eos
        seqs = torch.tensor([list(r) + [pad] * (length - len(r)) for r in responses], dtype=torch.long)
        mask = torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)
        self.N = seqs.shape[0]
        offsets = [sum(vocab**i for i in range(t)) for t in range(length)]
        nodes = torch.zeros_like(seqs)
        for t in range(length):  # node id of the prefix y<t: offset_t + (y<t read in base V)
            code = torch.zeros(self.N, dtype=torch.long)
            for i in range(t):
                code = code * vocab + seqs[:, i]
            nodes[:, t] = torch.where(mask[:, t], offsets[t] + code, torch.zeros_like(code))
        self.mask = mask.to(self.device)
        self.lengths = lengths.to(self.device)
        self.n_nodes = sum(vocab**t for t in range(length))
        self.sequences = seqs.to(self.device)
        self.nodes = nodes.to(self.device)
        depth = torch.zeros(self.n_nodes, dtype=torch.long)
        for t in range(length):  # forward over depths: nodes of depth t are a contiguous block
            depth[offsets[t] : offsets[t] + vocab**t] = t
        self.depth = depth.to(self.device)
        if prompt_weights is None:
            prompt_weights = torch.full((prompts,), 1.0 / prompts, dtype=dtype)
        pw = torch.as_tensor(prompt_weights, dtype=dtype)
        if pw.shape != (prompts,) or bool((pw < 0).any()) or abs(float(pw.sum()) - 1.0) > 1e-9:
            raise ValueError("prompt_weights must be a probability vector of length prompts")
        self.prompt_weights = pw.to(self.device)

    # ------------------------------------------------------------------ parameters
    @property
    def param_shape(self) -> tuple[int, int, int]:
        return (self.P, self.n_nodes, self.V)

    def init_params(self, generator: torch.Generator, scale: float = 1.0) -> torch.Tensor:
        """Random logits θ ~ scale · N(0, 1) (a leaf that requires grad)."""
        th = scale * torch.randn(
            self.param_shape, generator=generator, dtype=self.dtype, device=generator.device
        )
        return th.to(self.device).requires_grad_(True)

    # ------------------------------------------------------------------ distributions
    def token_log_probs(self, theta: torch.Tensor) -> torch.Tensor:
        """``[P, N, L]`` log π(yₜ | y<ₜ, p) for every prompt, sequence and step (0 after the end)."""
        logp = torch.log_softmax(theta, dim=-1)  # [P, n_nodes, V]
        per_node = logp[:, self.nodes]  # [P, N, L, V]
        lp = per_node.gather(-1, self.sequences.expand(self.P, -1, -1).unsqueeze(-1)).squeeze(-1)
        return torch.where(self.mask, lp, torch.zeros((), dtype=lp.dtype, device=lp.device))

    def log_probs(self, theta: torch.Tensor) -> torch.Tensor:
        """``[P, N]`` log π(y | p) = Σₜ log π(yₜ | y<ₜ, p)."""
        return self.token_log_probs(theta).sum(-1)

    def probs(self, theta: torch.Tensor) -> torch.Tensor:
        """``[P, N]`` π(y | p) (each row sums to 1)."""
        return self.log_probs(theta).exp()

    def prefix_probs(self, theta: torch.Tensor) -> torch.Tensor:
        """``[P, n_nodes]`` P_π(node | p), the probability of reaching each prefix."""
        p = self.probs(theta)
        out = torch.zeros(self.P, self.n_nodes, dtype=p.dtype, device=p.device)
        # a prefix's probability is the sum over the sequences that pass through it (at a step
        # before their end)
        for t in range(self.L):
            out = out.index_add(1, self.nodes[:, t], p * self.mask[:, t].to(p.dtype))
        return out

    # ------------------------------------------------------------------ exact objectives
    def objective(self, theta: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        """J(θ) = Σ_p w_p Σ_y π(y|p) R(p, y); ``rewards`` is ``[P, N]``."""
        return (self.prompt_weights * (self.probs(theta) * rewards).sum(-1)).sum()

    def kl(self, theta: torch.Tensor, theta_ref: torch.Tensor) -> torch.Tensor:
        """Sequence-level KL(π ‖ π_ref), averaged over prompts with their weights."""
        lp, lq = self.log_probs(theta), self.log_probs(theta_ref)
        return (self.prompt_weights * (lp.exp() * (lp - lq)).sum(-1)).sum()

    def kl_forward(self, theta: torch.Tensor, theta_ref: torch.Tensor) -> torch.Tensor:
        """Sequence-level KL(π_ref ‖ π)."""
        lp, lq = self.log_probs(theta), self.log_probs(theta_ref)
        return (self.prompt_weights * (lq.exp() * (lq - lp)).sum(-1)).sum()

    def conditional_kl(
        self, theta: torch.Tensor, theta_ref: torch.Tensor, direction: str = "reverse"
    ) -> torch.Tensor:
        """C(θ) = Σ_p w_p Σ_nodes sg(P_π(node)) KL at the node; direction "reverse" (π‖π_ref) or
        "forward" (π_ref‖π). Its gradient is the per-conditional KL gradient with the prefix
        distribution held fixed (computed over the vocabulary, not from samples)."""
        if direction == "reverse":
            per_node = kl_categorical(theta, theta_ref.detach())
        elif direction == "forward":
            per_node = kl_categorical(theta_ref.detach(), theta)
        else:
            raise ValueError(f"direction must be 'reverse' or 'forward', got {direction!r}")
        weight = self.prefix_probs(theta).detach()
        return (self.prompt_weights * (weight * per_node).sum(-1)).sum()

    # ------------------------------------------------------------------ exact expected gradients
    def grad(self, fn: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor) -> torch.Tensor:
        """∇θ fn(θ) (a fresh leaf, so the caller's θ is untouched)."""
        th = theta.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(fn(th), th)
        return g

    def token_pullback(self, theta: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """∇θ Σ_{p,n,t} weights[p, n, t] · log π(yₜ | y<ₜ, p) for ``weights`` ``[P, N, L]``
        (constant): the chain rule from per-token log-probabilities to the logits θ."""
        if tuple(weights.shape) != (self.P, self.N, self.L):
            raise ValueError(f"weights must have shape {(self.P, self.N, self.L)}, got {tuple(weights.shape)}")
        return self.grad(lambda t: (self.token_log_probs(t) * weights.detach()).sum(), theta)

    def kl_loss_surrogate(
        self, theta: torch.Tensor, theta_ref: torch.Tensor, estimator: str
    ) -> torch.Tensor:
        """Σ_p w_p Σ_y sg(π(y|p)) Σₜ kₜ(y): its gradient is E_π[∇ Σₜ kₜ] exactly."""
        lp = self.token_log_probs(theta)  # [P, N, L]
        lq = self.token_log_probs(theta_ref).detach()
        mask = self.mask.expand(self.P, -1, -1).reshape(-1, self.L)
        k = token_kl(lp.reshape(-1, self.L), lq.reshape(-1, self.L), mask, estimator)
        per_seq = k.sum(-1).reshape(self.P, self.N)
        w = self.probs(theta).detach()
        return (self.prompt_weights * (w * per_seq).sum(-1)).sum()

    def k1_reward_surrogate(
        self, theta: torch.Tensor, theta_ref: torch.Tensor, credit: str = "reward-to-go"
    ) -> torch.Tensor:
        """Score-function surrogate of the k1 penalty in the reward: Σ_y sg(π) Σₜ log πₜ · sg(cₜ).

        credit: "reward-to-go" (cₜ = Σ_{t'≥t} ℓ_{t'}), "total" (cₜ = Σ_{t'} ℓ_{t'}) or
        "immediate" (cₜ = ℓₜ). Its gradient is E[Σₜ cₜ ∇log πₜ], the expected gradient of the
        *penalty* E[Σₜ ℓₜ] (i.e. of +KL; the reward is its negative).
        """
        lp = self.token_log_probs(theta)
        ell = (lp - self.token_log_probs(theta_ref)).detach()
        if credit == "reward-to-go":
            c = ell.flip(-1).cumsum(-1).flip(-1)
        elif credit == "total":
            c = ell.sum(-1, keepdim=True).expand_as(ell)
        elif credit == "immediate":
            c = ell
        else:
            raise ValueError(f"credit must be 'reward-to-go', 'total' or 'immediate', got {credit!r}")
        w = self.probs(theta).detach()
        return (self.prompt_weights * (w * (lp * c).sum(-1)).sum(-1)).sum()

    # ------------------------------------------------------------------ sampling
    def sample(
        self, theta: torch.Tensor, n: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n iid (prompt, sequence) index pairs, p ~ w, y ~ π(·|p)."""
        with torch.no_grad():
            prompts = torch.multinomial(self.prompt_weights, n, replacement=True, generator=generator)
            p = self.probs(theta)[prompts]
            seqs = torch.multinomial(p, 1, generator=generator).squeeze(1)
        return prompts, seqs

    def sample_group(
        self, theta: torch.Tensor, groups: int, k: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``groups`` prompts p ~ w, each answered k times: ``([G], [G, k])`` indices."""
        with torch.no_grad():
            prompts = torch.multinomial(self.prompt_weights, groups, replacement=True, generator=generator)
            p = self.probs(theta)[prompts]
            seqs = torch.multinomial(p, k, replacement=True, generator=generator)
        return prompts, seqs

    def per_sample_grads(
        self,
        theta: torch.Tensor,
        fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
        prompts: torch.Tensor,
        seqs: torch.Tensor,
    ) -> torch.Tensor:
        """``[n, *param_shape]``: ∇θ fn for each sample separately.

        ``fn(token_log_probs [n, L], prompts [n], seqs [n]) -> [n]`` maps each sample's per-token
        log-probabilities (differentiable) to its scalar. Each sample gets its own copy of θ, so
        one backward pass gives every per-sample gradient.
        """
        n = prompts.shape[0]
        th = theta.detach().unsqueeze(0).expand(n, *self.param_shape).clone().requires_grad_(True)
        logp = torch.log_softmax(th[torch.arange(n, device=th.device), prompts], dim=-1)  # [n, nodes, V]
        nodes = self.nodes[seqs]  # [n, L]
        toks = self.sequences[seqs]
        lp = logp.gather(1, nodes.unsqueeze(-1).expand(-1, -1, self.V)).gather(-1, toks.unsqueeze(-1)).squeeze(-1)
        lp = torch.where(self.mask[seqs], lp, torch.zeros((), dtype=lp.dtype, device=lp.device))
        (g,) = torch.autograd.grad(fn(lp, prompts, seqs).sum(), th)
        return g

    def score_matrix(self, theta: torch.Tensor, prompt: int = 0) -> torch.Tensor:
        """``[N, *param_shape]`` ∇θ log π(y | prompt) for every sequence y (exact)."""
        seqs = torch.arange(self.N, device=self.device)
        prompts = torch.full_like(seqs, prompt)
        return self.per_sample_grads(theta, lambda lp, _p, _s: lp.sum(-1), prompts, seqs)

    def expected_group_gradient(
        self,
        theta: torch.Tensor,
        rewards: torch.Tensor,
        k: int,
        advantage_fn: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """Exact E[ĝ] of the group estimator ĝ = (1/K) Σ_k A_k ∇log π(y_k|p), y_1..y_K iid ~ π(·|p).

        Enumerates all Nᴷ ordered groups of each prompt (Nᴷ ≤ 2²⁰), computes their advantages
        with ``advantage_fn([M, K] rewards) -> [M, K]`` (e.g. :func:`pgmath.llm.rloo_advantages`)
        and sums Π_k π(y_k) · (1/K) Σ_k A_k ∇log π(y_k), averaged over prompts with their weights.
        """
        if self.N**k > 2**20:
            raise ValueError(f"N ** k = {self.N**k} groups is too many to enumerate")
        grid = torch.cartesian_prod(*[torch.arange(self.N, device=self.device)] * k)
        grid = grid.reshape(-1, k)
        out = torch.zeros(self.param_shape, dtype=self.dtype, device=self.device)
        with torch.no_grad():
            probs = self.probs(theta)
        for p in range(self.P):  # over prompts, each with its own tree
            pr = probs[p][grid].prod(-1)  # [M]
            adv = advantage_fn(rewards[p][grid])  # [M, K]
            coef = torch.zeros(self.N, dtype=self.dtype, device=self.device)
            coef.index_add_(0, grid.reshape(-1), (pr.unsqueeze(1) * adv / k).reshape(-1))
            S = self.score_matrix(theta, p)
            out = out + self.prompt_weights[p] * torch.einsum("n,n...->...", coef, S)
        return out
