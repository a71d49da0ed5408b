"""Pipeline configuration: every value a run depends on (saved as ``config.json`` in the run dir)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from .task import TaskSpec

SOURCES = ("rm_100", "rm_75", "rm_50", "rm_25", "rm_0", "perfect_lowvar", "ground_truth")
RM_SOURCES = SOURCES[:5]
MIXES = (1.0, 0.75, 0.5, 0.25, 0.0)


@dataclass(frozen=True)
class Seeds:
    """Fixed data seeds (theory.md 3.5 roles) and training seeds."""

    split: int = 1283      # prompt generation and train/test, RM/PG split
    mix: int = 182         # the one permutation of RM prompts used for every on-/off-policy mix
    pg: int = 872          # policy-gradient prompt order
    eval: int = 237        # evaluation / normalisation prompts and their samples
    scaled: int = 8122     # prompts scaled by the perfect-accuracy low-variance source
    offpolicy: int = 31    # off-policy generator samples
    sft: int = 0           # SFT init and data
    prefs: int = 5         # on-policy preference samples
    rm: int = 1            # reward-model init and batch order
    rl: tuple = (0, 1, 2)  # RLOO seeds (one run per source per seed)


@dataclass(frozen=True)
class Config:
    name: str = "small"
    # task
    n_content: int = 13
    m_min: int = 3
    m_max: int = 6
    # prompts: n_train is split 80/20 into RM-training and PG prompts; n_test is held out
    n_train: int = 5120
    n_test: int = 256
    rm_fraction: float = 0.8
    # model
    d_model: int = 48
    n_layers: int = 2
    n_heads: int = 4
    # SFT (the deliberately mediocre initial policy)
    sft_steps: int = 1000
    sft_batch: int = 64
    sft_lr: float = 1e-3
    sft_sub_noise: float = 0.3
    sft_len_noise: float = 0.15
    # reward models (Bradley–Terry, centring 0.01)
    rm_epochs: int = 3
    rm_batch: int = 32
    rm_lr: float = 3e-4
    rm_center: float = 0.01
    # perfect-accuracy low-variance source
    perfect_fraction: float = 0.5
    perfect_factor: float = 0.001
    # RM evaluation / normalisation
    n_eval_prompts: int = 500
    n_eval_samples: int = 10
    norm_scheme: str = "global"
    # policy gradient
    algo: str = "rloo"
    k: int = 2
    beta: float = 0.05
    clip: float = 0.2
    n_minibatches: int = 2
    batch_prompts: int = 32
    rl_lr: float = 3e-5
    rl_epochs: int = 6
    n_policy_eval_prompts: int = 128
    n_policy_eval_samples: int = 8
    kl_window: int = 20
    grpo_kl: str = "k3_in_loss"  # GRPO only: "k3_in_loss" (intended penalty, with gradient) or "none" (released code)
    seeds: Seeds = field(default_factory=Seeds)

    def __post_init__(self):
        TaskSpec(self.n_content, self.m_min, self.m_max)
        if self.norm_scheme not in ("global", "prompt_variance"):
            raise ValueError(f"norm_scheme must be 'global' or 'prompt_variance'; got {self.norm_scheme!r}")
        if self.algo not in ("rloo", "grpo"):
            raise ValueError(f"algo must be 'rloo' or 'grpo'; got {self.algo!r}")
        if self.grpo_kl not in ("k3_in_loss", "none"):
            raise ValueError(f"grpo_kl must be 'k3_in_loss' or 'none'; got {self.grpo_kl!r}")
        if self.k < 2:
            raise ValueError(f"k must be >= 2 (leave-one-out baseline); got {self.k}")
        if not 0 < self.rm_fraction < 1:
            raise ValueError(f"rm_fraction must be in (0, 1); got {self.rm_fraction}")
        rollout = self.batch_prompts * self.k
        if self.n_pg % rollout:
            raise ValueError(f"the number of PG prompts ({self.n_pg} = n_train·(1−rm_fraction)) must be a multiple "
                             f"of batch_prompts·k = {rollout} so that an epoch is a whole number of rollouts")
        if rollout % self.n_minibatches:
            raise ValueError(f"batch_prompts·k ({rollout}) must be divisible by n_minibatches ({self.n_minibatches})")
        if self.n_eval_prompts > self.n_pg:
            raise ValueError(f"n_eval_prompts ({self.n_eval_prompts}) must be <= the number of PG prompts ({self.n_pg})")
        if self.n_policy_eval_prompts > self.n_test:
            raise ValueError(f"n_policy_eval_prompts ({self.n_policy_eval_prompts}) must be <= n_test ({self.n_test})")
        if self.n_eval_samples < 2:
            raise ValueError(f"n_eval_samples must be >= 2; got {self.n_eval_samples}")
        if not self.seeds.rl:
            raise ValueError("seeds.rl must name at least one seed")
        for name in ("sft_steps", "rm_epochs", "rl_epochs", "sft_batch", "rm_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")

    @property
    def task(self) -> TaskSpec:
        return TaskSpec(self.n_content, self.m_min, self.m_max)

    @property
    def n_pg(self) -> int:
        return self.n_train - self.n_rm

    @property
    def n_rm(self) -> int:
        return int(round(self.n_train * self.rm_fraction))

    @property
    def rollouts_per_epoch(self) -> int:
        return self.n_pg // (self.batch_prompts * self.k)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @staticmethod
    def from_dict(d: dict) -> "Config":
        d = dict(d)
        seeds = d.pop("seeds", {})
        if "rl" in seeds:
            seeds["rl"] = tuple(seeds["rl"])
        known = {f.name for f in dataclasses.fields(Config)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        return Config(**d, seeds=Seeds(**seeds))

    def replace(self, **kw) -> "Config":
        return dataclasses.replace(self, **kw)


CONFIGS = {
    "small": Config(),
    "tiny": Config(name="tiny", n_content=8, m_min=2, m_max=4, n_train=320, n_test=32, d_model=32, n_layers=1,
                   n_heads=2, sft_steps=100, sft_batch=64, sft_lr=3e-3, rm_epochs=2, rm_lr=1e-3,
                   n_eval_prompts=32, batch_prompts=16, rl_lr=1e-4, n_policy_eval_prompts=32,
                   n_policy_eval_samples=4, seeds=Seeds(rl=(0, 1))),
}


def get_config(name: str) -> Config:
    if name not in CONFIGS:
        raise ValueError(f"config must be one of {sorted(CONFIGS)}; got {name!r}")
    return CONFIGS[name]
