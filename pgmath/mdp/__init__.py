"""Exact tabular MDPs: values, occupancies, the objective and the exact policy gradient.

Small MDPs whose exact gradients are known are how pgmath proves its estimators right:
:class:`TabularMDP` solves them with linear solves, :func:`sample_episodes` draws episodes from
them (vectorized in torch), and :mod:`pgmath.mdp.canonical` holds the textbook examples.
Gymnasium environments live in :mod:`pgmath.mdp.envs` (imported on demand).
"""

from pgmath.mdp.canonical import (
    GRID_ACTIONS,
    bandit,
    chain,
    gridworld,
    random_mdp,
    short_corridor,
    short_corridor_features,
)
from pgmath.mdp.finite_differences import central_difference_gradient
from pgmath.mdp.finite_horizon import (
    backward_induction_values,
    finite_horizon,
    finite_horizon_policy,
)
from pgmath.mdp.goodness_of_fit import (
    OccupancyTest,
    occupancy_chi_square,
    truncated_occupancy,
)
from pgmath.mdp.iterative_evaluation import iterative_occupancy, iterative_policy_evaluation
from pgmath.mdp.parameterizations import LinearSoftmaxPolicy
from pgmath.mdp.sampler import (
    Episodes,
    sample_episodes,
    sample_episodes_reference,
    steps_for_tolerance,
)
from pgmath.mdp.tabular import PolicyFn, TabularMDP

__all__ = [
    "GRID_ACTIONS",
    "Episodes",
    "LinearSoftmaxPolicy",
    "OccupancyTest",
    "PolicyFn",
    "TabularMDP",
    "backward_induction_values",
    "bandit",
    "central_difference_gradient",
    "chain",
    "finite_horizon",
    "finite_horizon_policy",
    "gridworld",
    "iterative_occupancy",
    "iterative_policy_evaluation",
    "occupancy_chi_square",
    "random_mdp",
    "sample_episodes",
    "sample_episodes_reference",
    "short_corridor",
    "short_corridor_features",
    "steps_for_tolerance",
    "truncated_occupancy",
]
