"""The miniature LM pipeline (the paper's Section 4.1 end to end, in JAX on CPU).

Stages: SFT of a mediocre initial policy → on-policy preference pairs → five Bradley–Terry reward models
(100/75/50/25/0 % on-policy) → perfect-accuracy low-variance source → RM evaluation (rmtheory.rm_report)
→ RLOO with 7 reward sources × seeds → tables and figures. See :mod:`rmtheory.lm.task` for the task, and
:mod:`rmtheory.lm.studies` for the studies built on the pipeline (``rmtheory lm grid``, ``paradox``,
``reportcard``).
"""

from .config import CONFIGS, SOURCES, Config, get_config
from .pipeline import STAGES, run

__all__ = ["CONFIGS", "SOURCES", "STAGES", "Config", "get_config", "run"]
