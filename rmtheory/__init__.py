"""rmtheory: what makes a reward model a good teacher? (Razin et al., arXiv 2503.15477), in JAX.

The core data type is :class:`Instance` (tabular policy logits, optimised reward, reference, λ); every
theory function takes it. The theory computes in float64: call :func:`enable_x64` once first (importing
the package leaves JAX's global dtype flag alone; the theory entry points raise if it is off).
"""

__version__ = "0.1.0"

from ._precision import enable_x64, x64_enabled
from ._instance import Instance, logits_from_probs, make_instance, random_instance
from ._metrics import (
    accuracy,
    expected_reward,
    on_policy_accuracy,
    pair_agreement,
    pair_list_accuracy,
    reward_variance,
    sample_variance,
)
from ._objective import (
    gradient,
    kl,
    kl_reward,
    lemma7_column,
    log_policy,
    objective,
    optimal_policy,
    policy,
    policy_velocity,
    prompt_gradient,
    prompt_objective,
    value,
)
from ._solver import (
    HORIZON,
    MAX_STEPS,
    OUT_OF_RANGE,
    REACHED,
    STATUS_NAMES,
    UNREACHABLE,
    HitResult,
    Status,
    first_hitting_time,
    first_hitting_times,
)
from ._flow import (
    flow_logits,
    flow_trajectory,
    parametric_flow,
    parametric_objective,
    parametric_time_to_gamma,
    time_to_gamma,
)
from ._autoregressive import (
    num_prefixes,
    prefix_table,
    random_prefix_logits,
    sequence_log_probs,
    sequence_probs,
)
from ._rm_eval import RMReport, normalisation_stats, normalise, rm_report
from ._stats import pearson, rankdata, spearman
from ._ascent import AscentResult, ascent_time_to_gamma, sampled_gradient
from ._bounds import (
    Prop4Check,
    lemma8_gradient_bound,
    lemma10_growth_bound,
    prop2_gradient_bound,
    prop3_time_lower_bound,
    prop4_conditions,
    prop4_time_upper_bound,
    rho,
    thm4_time_lower_bound,
    thm5_lambda_threshold,
    thm5_slow_lower_bound,
    thm5_time_upper_bound,
    thm6_lambda_threshold,
    thm6_slow_lower_bound,
    thm6_time_upper_bound,
)
from ._constructions import (
    Thm5Construction,
    Thm6Bounds,
    attainable_accuracies,
    default_y_gamma,
    fast_reward,
    one_hot_reward,
    order_with_accuracy,
    sample_thm6_policies,
    slow_reward,
    thm5_construction,
    thm6_bounds,
    weak_orders,
)
from ._sharding import core_blocks, host_cores, shard_leading
from ._best_of_n import best_of_n_distribution, best_of_n_optimal_value, best_of_n_value
from ._neural import MLP, TabularAR, init_batch, jacobian_norm, jacobian_norms, trajectory_jacobian_norm
from ._neural import time_to_gamma as neural_time_to_gamma
from ._rate_estimator import RateEstimate, rate_estimate
from ._sketch import projection_matrix, sketch, sketch_variance
