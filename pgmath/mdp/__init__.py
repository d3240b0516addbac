"""Exact tabular MDPs: values, occupancies, the objective and the exact policy gradient.

Small MDPs whose exact gradients are known are how pgmath proves its estimators right:
:class:`TabularMDP` solves them with linear solves, :func:`sample_episodes` draws episodes from
them (vectorized in torch), and :mod:`pgmath.mdp.canonical` holds the textbook examples.
Gymnasium environments live in :mod:`pgmath.mdp.envs`; importing :mod:`pgmath.mdp` registers their
ids (``gymnasium.make("pgmath/ShortCorridor-v0")``), as environment packages do, when gymnasium is
installed (``pip install 'pgmath[mdp]'``); without it the rest of the package works.

The deterministic quantities (V^π, Q^π, d^π, the exact ∇J, finite-horizon values) are specified
in :mod:`pgmath.specs.mdp` (properties, wrong variants, bad inputs); the ``pgmath verify --area
mdp`` rows are built from those specs plus the statistical rows of :mod:`pgmath.mdp.verify`.
"""

from pgmath.mdp.canonical import (
    EXAMPLE_13_1,
    FIGURE_4_1,
    GRID_ACTIONS,
    bandit,
    chain,
    gridworld,
    random_mdp,
    short_corridor,
    short_corridor_features,
    short_corridor_optimum,
    short_corridor_value,
)
from pgmath.mdp.finite_differences import central_difference_gradient
from pgmath.mdp.finite_horizon import (
    backward_induction_values,
    finite_horizon,
    finite_horizon_policy,
    finite_horizon_values,
)
from pgmath.mdp.goodness_of_fit import (
    OccupancyTest,
    occupancy_chi_square,
    truncated_occupancy,
)
from pgmath.mdp.iterative_evaluation import (
    iterative_action_values,
    iterative_occupancy,
    iterative_policy_evaluation,
    iterative_policy_gradient,
)
from pgmath.mdp.natural import (
    NPGRun,
    TRPOStep,
    fisher_information,
    natural_gradient,
    npg_gap_bound,
    npg_iterations,
    optimal_state_values,
    trpo_step,
)
from pgmath.mdp.offpolicy import (
    retrace_fixed_point,
    retrace_operator,
    vtrace_fixed_point,
    vtrace_operator,
    vtrace_target_policy,
)
from pgmath.mdp.parameterizations import LinearSoftmaxPolicy
from pgmath.mdp.sampler import (
    Episodes,
    sample_episodes,
    sample_episodes_reference,
    steps_for_tolerance,
)
from pgmath.mdp.tabular import PolicyFn, TabularMDP
from pgmath.optional import missing

if not missing("gymnasium"):  # register pgmath/ShortCorridor-v0, … with gymnasium on import
    from pgmath.mdp import envs as envs

__all__ = [
    "EXAMPLE_13_1",
    "FIGURE_4_1",
    "GRID_ACTIONS",
    "Episodes",
    "LinearSoftmaxPolicy",
    "NPGRun",
    "OccupancyTest",
    "PolicyFn",
    "TRPOStep",
    "TabularMDP",
    "backward_induction_values",
    "bandit",
    "central_difference_gradient",
    "chain",
    "finite_horizon",
    "finite_horizon_policy",
    "finite_horizon_values",
    "fisher_information",
    "gridworld",
    "iterative_action_values",
    "iterative_occupancy",
    "iterative_policy_evaluation",
    "iterative_policy_gradient",
    "natural_gradient",
    "npg_gap_bound",
    "npg_iterations",
    "occupancy_chi_square",
    "optimal_state_values",
    "random_mdp",
    "retrace_fixed_point",
    "retrace_operator",
    "sample_episodes",
    "sample_episodes_reference",
    "short_corridor",
    "short_corridor_features",
    "short_corridor_optimum",
    "short_corridor_value",
    "steps_for_tolerance",
    "trpo_step",
    "truncated_occupancy",
    "vtrace_fixed_point",
    "vtrace_operator",
    "vtrace_target_policy",
]
