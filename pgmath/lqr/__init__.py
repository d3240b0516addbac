"""LQR: an exact oracle for continuous-action policy gradients.

The discounted linear-quadratic regulator with the linear-Gaussian policy u = −Kx + σε has a
closed-form expected cost C(K) and gradient ∇C(K) (discrete Lyapunov solves), so Monte-Carlo
estimators of continuous-action policy gradients can be checked against an exact answer, as the
tabular MDPs of :mod:`pgmath.mdp` do for discrete actions.

* :class:`LQR` — ``cost(K)``, ``gradient(K)``, ``value_matrix``, ``state_covariance``, their
  finite-horizon versions, and ``sample(K, n, horizon, generator=…)`` (:mod:`.system`);
* :func:`solve_discrete_lyapunov` (Kronecker solve or doubling, both differentiable; :mod:`.lyapunov`);
* :func:`lqr_cost_reference`, :func:`lqr_gradient_reference` — the series summed term by term
  (:mod:`.reference`);
* REINFORCE / reward-to-go / baseline / GAE estimators for the Gaussian policy (:mod:`.estimators`);
* the example systems (:mod:`.examples`), a gymnasium environment ``pgmath/LQR-v0``
  (:mod:`.env`, registered on import when gymnasium is installed) and the ``pgmath verify --area
  lqr`` rows (:mod:`.verify`). The specs are in :mod:`pgmath.specs.lqr`; the derivation in
  docs/lqr/index.md.
"""

from pgmath.lqr.estimators import (
    BIASED_LQR_ESTIMATORS,
    LQR_ESTIMATORS,
    UNBIASED_LQR_ESTIMATORS,
    lqr_gradient_samples,
    perturbed_lqr_values,
    score_matrices,
)
from pgmath.lqr.examples import example_gain, example_system, scalar_cost, scalar_gradient
from pgmath.lqr.lyapunov import LYAPUNOV_METHODS, solve_discrete_lyapunov
from pgmath.lqr.reference import lqr_cost_reference, lqr_gradient_reference
from pgmath.lqr.system import LQR, LQRTrajectories
from pgmath.optional import missing

if not missing("gymnasium"):  # register pgmath/LQR-v0 with gymnasium on import
    import pgmath.lqr.env  # noqa: F401

__all__ = [
    "BIASED_LQR_ESTIMATORS",
    "LQR",
    "LQR_ESTIMATORS",
    "LYAPUNOV_METHODS",
    "UNBIASED_LQR_ESTIMATORS",
    "LQRTrajectories",
    "example_gain",
    "example_system",
    "lqr_cost_reference",
    "lqr_gradient_reference",
    "lqr_gradient_samples",
    "perturbed_lqr_values",
    "scalar_cost",
    "scalar_gradient",
    "score_matrices",
    "solve_discrete_lyapunov",
]
