"""The studies built on the miniature LM instrument, each a ``rmtheory lm`` subcommand:

* :mod:`.grid` — ``rmtheory lm grid``: initial policies × reward models (the paper's Section 4.2);
* :mod:`.paradox` — ``rmtheory lm paradox``: the Accuracy Paradox sweep (Chen et al.);
* :mod:`.reportcard` — ``rmtheory lm reportcard``: ``rmtheory evaluate`` as a predictor of the teacher;
* :mod:`.common` — what the grid and the sweep share (study settings, RL over stacked runs).
"""
