"""The run directory: one object that owns every path, typed loaders and savers, and the resume checks.

Layout (every file written atomically by :mod:`rmtheory.io`; a stage is done when its marker file exists)::

    config.json          the run's config (the one source of truth on resume) and the code version
    data.npz             prompts of every split, off-policy pairs, eval-prompt positions       [data]
    sft.eqx, sft_log.json                                                                       [sft]
    samples.npz          on-policy RM pairs, eval samples (PG eval and test prompts × K)        [samples]
    rms.eqx, rm_log.json, rm_curves.csv                                                         [rm]
    perfect.npz          per-prompt scale of the perfect-accuracy low-variance source           [perfect]
    rm_eval.json, eval_rewards.csv, eval_offpolicy.csv, eval_per_prompt.npz, eval_sketches.npz  [rm_eval]
    rl/progress.json, rl/state_e*.eqx, rl/results.json                                          [rl]
    figures/lm_*         tables, validity report, figures                                        [analyze]
"""

from __future__ import annotations

import os
import shutil
import subprocess

from .. import io
from .config import RM_SOURCES, Config
from .task import Prompts


def relative_run_dir(path: str) -> str | None:
    """``path`` relative to the working directory when it lies inside it, else None: what the studies record
    of their run dirs (never a machine's absolute path)."""
    rel = os.path.relpath(os.path.abspath(path))
    return None if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


def publish(src_dir: str, names, figures_dir: str | None, rename: dict | None = None) -> None:
    """Copy the named files of ``src_dir`` that exist into ``figures_dir`` (if given), each atomically
    (:func:`rmtheory.io.atomic`), under ``rename.get(name, name)``."""
    if not figures_dir:
        return
    os.makedirs(figures_dir, exist_ok=True)
    for n in names:
        src = os.path.join(src_dir, n)
        if os.path.exists(src):
            dst = os.path.join(figures_dir, (rename or {}).get(n, n))
            io.atomic(lambda tmp, src=src: shutil.copyfile(src, tmp), dst)


def code_version() -> str:
    """``git describe --always --dirty`` of the package's checkout if there is one, else the package version."""
    from .. import __version__

    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=here, capture_output=True, text=True,
                             timeout=5)
        if out.returncode == 0 and out.stdout.strip():
            return f"{__version__}+{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__


class RunDir:
    """Paths and typed artifacts of one pipeline run."""

    def __init__(self, out: str):
        if os.path.exists(out) and not os.path.isdir(out):
            raise ValueError(f"--out {out} is a file, not a directory")
        self.out = out

    def path(self, *parts) -> str:
        return os.path.join(self.out, *parts)

    def exists(self, *parts) -> bool:
        return os.path.exists(self.path(*parts))

    # ------------------------------------------------------------------------------------------ config
    def stored_config(self) -> Config | None:
        p = self.path("config.json")
        if not os.path.exists(p):
            return None
        d = io.load_json(p)
        if not isinstance(d, dict) or "config" not in d:
            raise ValueError(f"{p}: not a run config (expected an object with a 'config' key)")
        return Config.from_dict(d["config"], where=p)

    def check_config(self, cfg: Config):
        """Refuse a run dir that holds a different config (writes nothing)."""
        old = self.stored_config()
        if old is not None and old != cfg:
            diff = io.differing_keys(old.to_dict(), cfg.to_dict())
            raise ValueError(f"{self.path('config.json')} holds a different config (differs in {diff}); use a fresh "
                             "--out directory or the same config")

    def save_config(self, cfg: Config):
        self.check_config(cfg)
        if self.stored_config() is None:
            io.save_json(self.path("config.json"), {"config": cfg.to_dict(), "code_version": code_version()})

    # ------------------------------------------------------------------------------------------ generic
    def save_json(self, name, obj):
        return io.save_json(self.path(name), obj)

    def load_json(self, name):
        return io.load_json(self.path(name))

    def save_npz(self, name, **arrays):
        return io.save_npz(self.path(name), **arrays)

    def load_npz(self, name) -> dict:
        return io.load_npz(self.path(name))

    # ------------------------------------------------------------------------------------------ typed
    def data(self) -> dict:
        return self.load_npz("data.npz")

    def prompts(self, split: str, data: dict | None = None) -> Prompts:
        """The prompts of ``split`` ∈ {rm, pg, test, eval} (eval = the PG eval prompts) as one Prompts."""
        d = self.data() if data is None else data
        allp = Prompts(*(d[f"prompt_{f}"] for f in Prompts._fields))
        if split == "eval":
            return allp.take(d["pg_id"][d["eval_idx"]])
        return allp.take(d[f"{split}_id"])

    def policy(self, cfg: Config):
        from .sft import init_policy

        return io.load_tree(self.path("sft.eqx"), init_policy(cfg))

    def policies(self, cfg: Config, name: str, n: int):
        """``n`` stacked policies saved as ``name``."""
        from .sft import init_policy
        from .stacking import stack

        return self.load_tree(name, stack([init_policy(cfg)] * n))  # structure only: every leaf is read

    def rms(self, cfg: Config, name: str = "rms.eqx", n: int = len(RM_SOURCES)):
        """``n`` stacked reward models saved as ``name`` (default: the pipeline's five mixes)."""
        from .model import RewardModel
        from .sft import init_policy
        from .stacking import stack

        pol = init_policy(cfg)  # structure only: every leaf is read from the file
        return self.load_tree(name, stack([RewardModel.from_policy(pol, cfg.task.prompt_len, cfg.rm_readout)] * n))

    def save_tree(self, name, tree):
        return io.save_tree(self.path(name), tree)

    def load_tree(self, name, like):
        return io.load_tree(self.path(name), like)
