"""Shared machinery of the specs of differentiable formulas (losses, log-probabilities, KL).

* :class:`GradCall` — a generated call that observes what a loss's user sees: its value *and* its
  gradient with respect to every floating-point argument. The spec tests compare these between an
  implementation (or a wrong variant) and the reference, so a bug that only shows in a gradient
  (an input that should be a constant but is not detached) is reachable by the input generator.
* :func:`loss_value` — the scalar loss of an implementation that returns the loss or
  ``(loss, info)`` (the harness accepts both).
* :func:`gradients` — autograd gradients, zero for an input the loss does not depend on.
* :func:`gradcheck_property` — a property that runs ``torch.autograd.gradcheck`` (finite
  differences) on the cases a spec builds for an implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pgmath.specs.spec import Call, Property
from pgmath.verification import Outcome, VerifyContext

__all__ = ["GradCall", "gradcheck_property", "gradients", "loss_value"]


def loss_value(out: Any) -> torch.Tensor:
    """The loss of ``out``: ``out`` itself, or ``out[0]`` when an implementation returns
    ``(loss, info)``."""
    return out[0] if isinstance(out, (tuple, list)) else out


def gradients(loss: torch.Tensor, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """∂loss/∂x for every x of ``inputs`` (zeros where the loss does not depend on x)."""
    grads = torch.autograd.grad(loss, list(inputs), allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for g, x in zip(grads, inputs)]


def _is_float_tensor(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and x.is_floating_point()


@dataclass(frozen=True)
class GradCall(Call):
    """A call of a loss that returns ``[loss, ∂loss/∂(each float argument) flattened]``.

    Every floating-point tensor argument is passed as a fresh leaf that requires grad, so a loss
    that should treat an argument as a constant (old log-probabilities, advantages, returns) must
    give it a zero gradient, as the reference does.

    With ``may_refuse=True`` (an input every entry of which is masked out) the observable is what
    the harness asks of such a batch: refusing it with a ``ValueError`` or returning a finite loss
    both give ``[0]``; a NaN or infinite loss gives ``[nan]``.
    """

    may_refuse: bool = False

    def __call__(self, fn: Callable[..., Any]) -> torch.Tensor:
        args = tuple(a.detach().clone().requires_grad_(True) if _is_float_tensor(a) else a
                     for a in self.args)
        if self.may_refuse:
            try:
                loss = loss_value(fn(*args, **dict(self.kwargs)))
            except ValueError:
                return torch.zeros(1, dtype=torch.float64)
            ok = bool(torch.isfinite(torch.as_tensor(loss)).all())
            return torch.zeros(1, dtype=torch.float64) if ok else torch.full((1,), float("nan"))
        loss = loss_value(fn(*args, **dict(self.kwargs)))
        leaves = [a for a in args if _is_float_tensor(a)]
        parts = [loss.detach().reshape(1)] + [g.detach().reshape(-1) for g in gradients(loss, leaves)]
        return torch.cat([p.to(torch.float64) for p in parts])


GradcheckCase = tuple[Callable[..., torch.Tensor], tuple[torch.Tensor, ...]]


def gradcheck_property(cases: Callable[[Callable[..., Any], VerifyContext], list[GradcheckCase]],
                       statement: str = "torch.autograd.gradcheck (finite differences), float64") -> Property:
    """A property that runs ``torch.autograd.gradcheck`` on every ``(fn, inputs)`` of
    ``cases(impl, ctx)``: the autograd gradient of ``fn`` must match central finite differences
    at ``inputs`` (float64 tensors that require grad, away from any kink of ``fn``)."""

    def run(impl: Callable[..., Any], ctx: VerifyContext) -> Outcome:
        built = cases(impl, ctx)
        ok = sum(bool(torch.autograd.gradcheck(fn, inputs, raise_exception=False))
                 for fn, inputs in built)
        return Outcome(ok == len(built), f"{ok}/{len(built)} gradchecks pass",
                       {"passed": ok, "cases": len(built)})

    return Property("gradcheck", statement, run)
