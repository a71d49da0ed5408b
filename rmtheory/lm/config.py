"""Pipeline configuration: every value a run depends on (saved as ``config.json`` in the run dir, the one
source of truth when a run is resumed).

A researcher changes it without editing code::

    rmtheory lm run --config small --set rl_lr=1e-4 --set k=4 --set teacher.conf_hard=0.6 --out runs/x
    rmtheory lm run --config path/to/config.json --out runs/y

Every value is type-checked (:meth:`Config.from_dict`), and every range is checked in ``__post_init__``;
errors name the key and the allowed values.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from dataclasses import dataclass, field

from .task import TaskSpec, Teacher

SOURCES = ("rm_100", "rm_75", "rm_50", "rm_25", "rm_0", "perfect_lowvar", "ground_truth")
RM_SOURCES = SOURCES[:5]
MIXES = dict(zip(RM_SOURCES, (1.0, 0.75, 0.5, 0.25, 0.0)))  # source -> on-policy fraction of its RM data
CORR_SOURCES = SOURCES[:6]  # the 6 non-ground-truth sources, correlated with the increases (Table 2)
LABELS = {"rm_100": "RM 100%", "rm_75": "RM 75%", "rm_50": "RM 50%", "rm_25": "RM 25%", "rm_0": "RM 0%",
          "perfect_lowvar": "Perfect acc., low var.", "ground_truth": "Ground truth"}
# reference scores reported beside the RMs (not RL reward sources)
BASELINES = ("sft_likelihood", "correct_letters", "correct_letters_len")
BASELINE_LABELS = {"sft_likelihood": "SFT log-lik. (mean/token)", "correct_letters": "# correct letters",
                   "correct_letters_len": "# correct − |len − m|"}
READOUTS = ("token", "mean", "last")
SMOKE_TESTS = ("tiny",)  # configs that show the code runs end to end; their validity gates are not expected to pass


@dataclass(frozen=True)
class Seeds:
    """Fixed data seeds (one per role) and training seeds."""

    split: int = 1283      # prompt generation and train/test, RM/PG split
    mix: int = 182         # the one permutation of RM prompts used for every on-/off-policy mix
    pg: int = 872          # policy-gradient prompt order
    eval: int = 237        # evaluation / normalisation prompts and their samples
    scaled: int = 8122     # prompts scaled by the perfect-accuracy low-variance source
    offpolicy: int = 31    # off-policy generator samples
    sft: int = 0           # SFT init and data
    prefs: int = 5         # on-policy preference samples
    rm: int = 1            # reward-model init and batch order
    rl: tuple = (0, 1, 2)  # RL seeds (one run per source per seed)


@dataclass(frozen=True)
class Config:
    name: str = "small"
    # task
    n_content: int = 10
    m_min: int = 3
    m_max: int = 6
    teacher: Teacher = field(default_factory=Teacher)
    # prompts: n_train is split 80/20 into RM-training and PG prompts; n_test is held out
    n_train: int = 16000
    n_test: int = 500
    rm_fraction: float = 0.8
    # model (policy and reward-model backbone)
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    # SFT (the initial policy, imitating the teacher with its systematic errors)
    sft_steps: int = 2000
    sft_batch: int = 64
    sft_lr: float = 2e-3
    # reward models (Bradley–Terry, centring 0.01), warmup + cosine decay, zero-initialised head
    rm_readout: str = "token"
    rm_epochs: int = 3
    rm_batch: int = 64
    rm_lr: float = 1e-3
    rm_warmup: float = 0.05  # fraction of the RM steps
    rm_center: float = 0.01
    rm_curve_every: int = 50  # learning-curve evaluation interval (steps)
    rm_curve_prompts: int = 200  # held-out eval prompts used for the learning curves
    # perfect-accuracy low-variance source
    perfect_fraction: float = 0.5
    perfect_factor: float = 0.001
    perfect_shift: float = 2.0  # scores (r_G + shift)·s(x): the constant of b_y = (r_G + 2)/(4T) (Theorem 2)
    # RM evaluation / normalisation / policy evaluation: n_eval_prompts PG prompts × n_eval_samples
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
    rl_lr: float = 1e-4
    rl_epochs: int = 6
    n_test_eval_prompts: int = 100  # held-out test prompts evaluated beside the PG eval prompts (× n_eval_samples)
    kl_window: int = 20
    grpo_kl: str = "k3_in_loss"  # GRPO only: "k3_in_loss" (intended penalty, with gradient) or "none" (released code)
    seeds: Seeds = field(default_factory=Seeds)

    def __post_init__(self):
        TaskSpec(self.n_content, self.m_min, self.m_max)
        choices = {"norm_scheme": ("global", "prompt_variance"), "algo": ("rloo", "grpo"),
                   "grpo_kl": ("k3_in_loss", "none"), "rm_readout": READOUTS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}; got {getattr(self, name)!r}")
        if self.k < 2:
            raise ValueError(f"k must be >= 2 (leave-one-out baseline); got {self.k}")
        for name in ("rm_fraction",):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (0, 1); got {getattr(self, name)}")
        for name in ("perfect_fraction", "rm_warmup"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]; got {getattr(self, name)}")
        for name in ("sft_lr", "rm_lr", "rl_lr", "perfect_factor", "clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0; got {getattr(self, name)}")
        for name in ("beta", "rm_center", "perfect_shift"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)}")
        for name in ("sft_steps", "rm_epochs", "rl_epochs", "sft_batch", "rm_batch", "d_model", "n_layers", "n_heads",
                     "n_minibatches", "batch_prompts", "rm_curve_every", "rm_curve_prompts", "n_test_eval_prompts",
                     "kl_window", "n_test", "n_train"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        rollout = self.batch_prompts * self.k
        if self.n_pg % rollout:
            raise ValueError(f"the number of PG prompts ({self.n_pg} = n_train·(1−rm_fraction)) must be a multiple "
                             f"of batch_prompts·k = {rollout} so that an epoch is a whole number of rollouts")
        if rollout % self.n_minibatches:
            raise ValueError(f"batch_prompts·k ({rollout}) must be divisible by n_minibatches ({self.n_minibatches})")
        if self.n_eval_prompts > self.n_pg:
            raise ValueError(f"n_eval_prompts ({self.n_eval_prompts}) must be <= the number of PG prompts "
                             f"({self.n_pg})")
        if self.rm_curve_prompts > self.n_eval_prompts:
            raise ValueError(f"rm_curve_prompts ({self.rm_curve_prompts}) must be <= n_eval_prompts "
                             f"({self.n_eval_prompts})")
        if self.n_test_eval_prompts > self.n_test:
            raise ValueError(f"n_test_eval_prompts ({self.n_test_eval_prompts}) must be <= n_test ({self.n_test})")
        if self.n_eval_samples < 2:
            raise ValueError(f"n_eval_samples must be >= 2; got {self.n_eval_samples}")
        if not self.seeds.rl:
            raise ValueError("seeds.rl must name at least one seed")
        if len(set(self.seeds.rl)) != len(self.seeds.rl) or min(self.seeds.rl) < 0:
            raise ValueError(f"seeds.rl must be distinct non-negative integers; got {list(self.seeds.rl)}")

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
        """An epoch is n_pg generated sequences (TRL's count): n_pg / (batch_prompts·k) rollout batches."""
        return self.n_pg // (self.batch_prompts * self.k)

    @property
    def adam_steps_per_epoch(self) -> int:
        return self.rollouts_per_epoch * self.n_minibatches

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @staticmethod
    def from_dict(d, where: str = "config") -> "Config":
        """Build a Config from plain JSON data, checking every key and type (errors name ``where`` and the key)."""
        try:
            return _build(Config, d, where)
        except ValueError as e:
            msg = str(e)
            raise ValueError(msg if msg.startswith(where) else f"{where}: {msg}") from None

    def replace(self, **kw) -> "Config":
        return dataclasses.replace(self, **kw)

    def with_overrides(self, assignments) -> "Config":
        """Apply ``key=value`` strings (dotted keys for nested fields: ``teacher.conf_hard=0.6``,
        ``seeds.rl=[0,1,2,3,4]``); values are parsed as JSON, else taken as strings."""
        d = self.to_dict()
        for a in assignments:
            if "=" not in a:
                raise ValueError(f"--set expects key=value; got {a!r}")
            key, raw = a.split("=", 1)
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
            node, parts = d, key.strip().split(".")
            for p in parts[:-1]:
                if not isinstance(node.get(p), dict):
                    raise ValueError(f"--set {key}: {p!r} is not a group of settings")
                node = node[p]
            if parts[-1] not in node:
                raise ValueError(f"--set {key}: unknown key; known: {sorted(node)}")
            node[parts[-1]] = value
        return Config.from_dict(d, where="--set")


def _check_type(value, tp, key):
    origin = typing.get_origin(tp)
    if tp is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            _bad(key, "a number", value)
        if not math.isfinite(value):
            raise ValueError(f"{key} must be a finite number; got {value!r}")
        return float(value)
    if tp is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _bad(key, "an integer", value)
    if tp is str:
        return value if isinstance(value, str) else _bad(key, "a string", value)
    if tp is tuple or origin is tuple:
        if not isinstance(value, (list, tuple)):
            _bad(key, "a list", value)
        return tuple(value)
    return value


def _bad(key, what, value):
    raise ValueError(f"{key} must be {what}; got {json.dumps(value) if _jsonable(value) else repr(value)}")


def _jsonable(v):
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def _build(cls, d, where, prefix=""):
    if not isinstance(d, dict):
        raise ValueError(f"{where}: {prefix.rstrip('.') or 'the config'} must be a JSON object; got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {[prefix + u for u in unknown]}")
    kw = {}
    for name, value in d.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kw[name] = _build(tp, value, where, prefix + name + ".")
        else:
            kw[name] = _check_type(value, tp, prefix + name)
    if cls is Seeds and "rl" in kw:
        for s in kw["rl"]:
            if not isinstance(s, int) or isinstance(s, bool):
                raise ValueError(f"{prefix}rl must be a list of integers; got {list(kw['rl'])}")
    if cls is Teacher and "sub" in kw:
        kw["sub"] = tuple(float(_check_type(v, float, prefix + "sub")) for v in kw["sub"])
    try:
        return cls(**kw)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


CONFIGS = {
    "small": Config(),
    "tiny": Config(name="tiny", n_content=8, m_min=2, m_max=4, n_train=640, n_test=32, d_model=32, n_layers=1,
                   n_heads=2, sft_steps=150, sft_batch=64, sft_lr=3e-3, rm_epochs=2, rm_batch=32, rm_lr=2e-3,
                   rm_curve_every=5, rm_curve_prompts=16, n_eval_prompts=32, n_eval_samples=4, batch_prompts=16,
                   rl_lr=3e-4, rl_epochs=3, n_test_eval_prompts=16, kl_window=4, seeds=Seeds(rl=(0, 1))),
}


def get_config(name_or_path: str) -> Config:
    """A named config (``small``, ``tiny``) or a JSON file holding a (possibly partial) config dict.

    A partial file is applied on top of ``small`` (or of the config named by its ``"name"`` if that is a
    named config)."""
    if name_or_path in CONFIGS:
        return CONFIGS[name_or_path]
    if name_or_path.endswith(".json") or os.path.sep in name_or_path or os.path.exists(name_or_path):
        from .. import io

        if not os.path.isfile(name_or_path):
            raise ValueError(f"--config {name_or_path}: no such file")
        d = io.load_json(name_or_path)
        if not isinstance(d, dict):
            raise ValueError(f"{name_or_path}: the config must be a JSON object; got {type(d).__name__}")
        name = d.get("name")
        base = CONFIGS[name if isinstance(name, str) and name in CONFIGS else "small"].to_dict()
        _merge(base, d)
        return Config.from_dict(base, where=name_or_path)
    raise ValueError(f"--config must be one of {sorted(CONFIGS)} or a path to a .json file; got {name_or_path!r}")


def _merge(base: dict, upd: dict):
    for k, v in upd.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
