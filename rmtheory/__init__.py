"""rmtheory: what makes a reward model a good teacher? (Razin et al., arXiv 2503.15477), in JAX.

The core data type is :class:`Instance` (tabular policy logits, optimised reward, reference, λ); every
theory function takes it. The theory computes in float64: call :func:`enable_x64` once first (importing
the package leaves JAX's global dtype flag alone; the theory entry points raise if it is off).

The public API is :data:`__all__`; the subpackages ``rmtheory.evaluate``, ``rmtheory.figures``, ``rmtheory.io``,
``rmtheory.lm`` and ``rmtheory.hf`` are imported by name. A solver status is a :class:`Status` member
(``res.status == rmtheory.Status.REACHED``).
"""

__version__ = "0.1.0"

from ._precision import enable_x64, x64_enabled
from ._cache import enable_compilation_cache
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
from ._stats import pearson, spearman
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
from ._sharding import shard_leading
from ._best_of_n import best_of_n_distribution, best_of_n_optimal_value, best_of_n_value
from ._neural import MLP, TabularAR, init_batch, jacobian_norm, jacobian_norms, trajectory_jacobian_norm
from ._neural import time_to_gamma as neural_time_to_gamma
from ._rate_estimator import (
    HeldOutRateEstimate,
    PooledRateEstimate,
    RateEstimate,
    held_out_rate_estimate,
    pooled_rate_estimate,
    rate_estimate,
)
from ._optimizer_rate import (
    RateAccumulator,
    StreamedRates,
    adam_direction,
    adam_geometry_rate,
    sign_direction,
    sign_rate,
)
from ._sketch import projection_matrix, sketch, sketch_variance
from ._flow import parametric_prompt_objective
from ._teaching_rate import (
    TeachingRate,
    neural_teaching_rate,
    parametric_self_rate,
    parametric_teaching_rate,
    rate_cauchy_schwarz_bound,
    self_rate,
    self_rate_variance_bound,
    teaching_rate,
    teaching_rate_variance_bound,
)

__all__ = [
    "accuracy", "ascent_time_to_gamma", "AscentResult", "attainable_accuracies", "best_of_n_distribution",
    "best_of_n_optimal_value", "best_of_n_value", "default_y_gamma", "enable_compilation_cache", "enable_x64",
    "expected_reward",
    "fast_reward", "first_hitting_time", "first_hitting_times", "flow_logits", "flow_trajectory", "gradient",
    "HitResult", "init_batch", "Instance", "jacobian_norm", "jacobian_norms", "kl", "kl_reward",
    "lemma10_growth_bound", "lemma7_column", "lemma8_gradient_bound", "log_policy", "logits_from_probs",
    "make_instance", "MLP", "neural_teaching_rate", "neural_time_to_gamma", "normalisation_stats", "normalise",
    "num_prefixes", "objective", "on_policy_accuracy", "one_hot_reward", "optimal_policy", "order_with_accuracy",
    "pair_agreement", "pair_list_accuracy", "parametric_flow", "parametric_objective",
    "parametric_prompt_objective", "parametric_self_rate", "parametric_teaching_rate", "parametric_time_to_gamma",
    "pearson", "policy", "policy_velocity", "prefix_table", "projection_matrix", "prompt_gradient",
    "prompt_objective", "prop2_gradient_bound", "prop3_time_lower_bound", "prop4_conditions",
    "prop4_time_upper_bound", "Prop4Check", "random_instance", "random_prefix_logits",
    "rate_cauchy_schwarz_bound", "rate_estimate", "RateEstimate", "pooled_rate_estimate",
    "PooledRateEstimate", "held_out_rate_estimate", "HeldOutRateEstimate", "adam_direction", "sign_direction",
    "adam_geometry_rate", "sign_rate", "RateAccumulator", "StreamedRates", "reward_variance", "rho", "rm_report",
    "RMReport", "sample_thm6_policies", "sample_variance", "sampled_gradient", "self_rate",
    "self_rate_variance_bound", "sequence_log_probs", "sequence_probs", "shard_leading", "sketch",
    "sketch_variance", "slow_reward", "spearman", "Status", "TabularAR", "teaching_rate",
    "teaching_rate_variance_bound", "TeachingRate", "thm4_time_lower_bound", "thm5_construction",
    "thm5_lambda_threshold", "thm5_slow_lower_bound", "thm5_time_upper_bound", "Thm5Construction", "thm6_bounds",
    "thm6_lambda_threshold", "thm6_slow_lower_bound", "thm6_time_upper_bound", "Thm6Bounds", "time_to_gamma",
    "trajectory_jacobian_norm", "value", "weak_orders", "x64_enabled"
]
