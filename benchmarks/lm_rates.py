"""Benchmark the LM pipeline's teaching rates: every rate of 500 prompts × 10 samples × 6 score sources of the
``small`` policy (benchmark, not a test).

Times :func:`rmtheory.lm.teaching_rate.export_rates` (one pass of exact per-sample gradients: Gram matrices,
count sketches, and the streaming pooled / per-prompt / Adam-geometry / sign rates, plus the two sketch files)
against the baseline measured in the same run: :func:`score_vector_grams` alone (the per-prompt rate's Gram
matrices, which is what the pipeline computed before the pooled rates). The policy is the ``small`` config's
transformer at its seeded initialisation; the samples are its own (sampled with a fixed key), the scores
seeded random functions of the ground truth. Usage::

    taskset -c 0,1 python benchmarks/lm_rates.py [--prompts 500] [--k 10] [--sources 6]

Target: ≤ 30 s for all rates on 2 idle cores (the first call's compilation included, the cache off).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from _machine import cpus_line  # benchmarks/_machine.py (this script's directory is on sys.path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=500)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--sources", type=int, default=6)
    args = ap.parse_args()
    import jax

    import rmtheory
    from rmtheory.lm import task as T
    from rmtheory.lm.config import get_config
    from rmtheory.lm.measure import ground_truth, sample_tokens
    from rmtheory.lm.model import Transformer, param_count
    from rmtheory.lm.teaching_rate import export_rates, score_vector_grams

    rmtheory.enable_x64()
    cfg = get_config("small")
    spec = cfg.task
    model = Transformer.init(jax.random.PRNGKey(0), spec.vocab, spec.seq_len, cfg.d_model, cfg.n_layers, cfg.n_heads)
    prompts = T.unique_prompts(jax.random.PRNGKey(1), spec, args.prompts)
    toks = sample_tokens(model, np.repeat(np.asarray(prompts.tokens), args.k, axis=0), jax.random.PRNGKey(2), cfg)
    gt = ground_truth(cfg, prompts.repeat(args.k), toks[:, spec.prompt_len:]).reshape(-1, args.k)
    rng = np.random.default_rng(0)
    scores = {f"rm_{i}": gt * (i / args.sources) + rng.normal(size=gt.shape) for i in range(args.sources)}
    ids = np.arange(args.prompts).astype(str)
    batch = cfg.batch_prompts * cfg.k // cfg.n_minibatches
    print(f"small policy: {param_count(model):,} parameters; {args.prompts} prompts x {args.k} samples, "
          f"{args.sources} scores + ground truth; Adam minibatch {batch} samples")
    t = time.perf_counter()
    score_vector_grams(model, toks, spec.prompt_len, args.k)
    t_base = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        res = export_rates(os.path.join(d, "x"), model, toks, spec.prompt_len, ids, args.k, scores, gt, batch)
        t_all = time.perf_counter() - t
    print(f"baseline, per-prompt Gram matrices only (score_vector_grams): {t_base:.1f} s")
    verdict = "met" if t_all <= 30 else f"missed by {t_all - 30:.1f} s"
    print(f"all rates (export_rates: Grams, count sketches, pooled/within/Adam/sign, two sketch files): {t_all:.1f} s "
          f"= {t_all / t_base:.2f}x the baseline; target <= 30 s: {verdict}")
    r = res["sources"][f"rm_{args.sources - 1}"]
    print(f"  e.g. rm_{args.sources - 1}: pooled rate_G {r['rate_g']:.4g} "
          f"(count sketch {r['rate_g_countsketch']:.4g} ± {r['countsketch_se']:.2g}), within {r['rate_g_within']:.4g}, "
          f"Adam {r['rate_adam']:.4g}, sign {r['rate_sign']:.4g}")
    if cpus_line():
        print("  " + cpus_line())


if __name__ == "__main__":
    main()
