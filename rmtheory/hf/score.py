"""``rmtheory score``: from Hugging Face checkpoints to the tables that ``rmtheory evaluate`` reads.

1. Loads a causal-LM policy (``AutoModelForCausalLM``: a local directory, or a Hub name when no local path of
   that name exists) and samples K responses per prompt (seed, temperature, top-p, top-k, max-new-tokens),
   through the tokenizer's chat template when it has one.
2. Scores every (prompt, response) with each reward model (``AutoModelForSequenceClassification`` with one
   output, each with its own tokenizer and chat template) and, with ``--ground-truth``, with a model that plays
   the ground truth.
3. Scores the off-policy chosen/rejected pairs of ``--off-policy``, if given.
4. With ``--teaching-rate``, takes each sample's score vector ∇_θ log π(y|x) under the policy (float32; the
   parameters ``--grad-params``, projected to ``--sketch-dim``; :mod:`rmtheory.hf.grads`).
5. Writes ``--out`` (CSV: ``prompt_id, sample_id``, one column per reward model, the ground-truth column
   last), ``<stem>_pairs.csv`` (``prompt_id, M.chosen, M.rejected`` per model), ``<stem>_samples.jsonl``
   (the sampled responses), with ``--teaching-rate`` ``<stem>_sketches.npz`` (the sketch file of ``rmtheory
   evaluate --sketches``) and ``<stem>_score.json`` (the settings), every file atomically.

How it runs: one model in memory at a time (all samples are generated first, then each reward model scores
everything), in chunks of ``--chunk-prompts`` prompts, each chunk's result saved under ``<out>.parts/`` as
soon as it is done; a re-run with the same settings skips the saved chunks and gives the same files as an
uninterrupted run (Ctrl-C exits with status 130 and says so). A re-run with other settings keeps every chunk
those settings would reproduce (:func:`rmtheory.hf._inputs.stale_chunks`) and refuses, without ``--overwrite``,
to drop the others. The K samples of a prompt are one ``generate`` call seeded from (``--seed``, prompt_id),
so they depend neither on the chunking nor on the order of the prompts. Scoring batches (``--batch-size``
texts, sorted by length within a chunk) are padded; a score equals the reward model's forward pass on that
text alone up to float rounding (~1e-6 relative in float32).

Input files (JSON Lines, one object per line): ``--prompts``: ``{"prompt_id": "p0", "prompt": "..."}``
(``prompt_id`` optional: the 0-based row number); ``--off-policy``: ``{"prompt_id": ..., "prompt": ...,
"chosen": ..., "rejected": ...}`` (``prompt_id`` optional when the prompt text is one of ``--prompts``).
Without a chat template a reward model reads ``prompt + " " + response`` (no space added when one side
already has it); see :func:`rmtheory.hf._inputs.rm_input`.

The run is a sequence of named steps (:data:`STEPS`) over one :class:`Run`; inputs and settings (no torch)
are :mod:`rmtheory.hf._inputs`, the models :mod:`rmtheory.hf._models`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time

import numpy as np

from .. import io as rio
from . import _inputs, _models
from ._inputs import (INSTALL_HINT, PAIR_KEYS, SCORE_KEYS, SETTING_DEFAULTS, ScoreError, Settings, differences,
                      model_source, output_paths, read_pairs, read_prompts, rm_input, stale_chunks)

__all__ = ["STEPS", "Run", "ScoreError", "Settings", "configure", "main", "output_paths", "read_pairs",
           "read_prompts", "run"]


@dataclasses.dataclass
class Run:
    """The state the steps share: settings, inputs, where the chunks and tables go, what was written."""

    s: Settings
    prompts: list
    pairs: list | None
    paths: dict
    device: str
    log: object
    progress: bool = True
    written: list = dataclasses.field(default_factory=list)
    t0: float = dataclasses.field(default_factory=time.perf_counter)

    @property
    def p_chunks(self):
        return _chunks(len(self.prompts), self.s.chunk_prompts)

    @property
    def q_chunks(self):
        return _chunks(len(self.pairs), self.s.chunk_prompts * self.s.k) if self.pairs else []

    def part(self, kind: str, c: int, name: str | None = None, ext: str = "json") -> str:
        """Path of a chunk file: ``gen-C``, ``score-NAME-C``, ``pairs-NAME-C`` (``.json``) or ``grads-C.npz``."""
        return os.path.join(self.paths["parts"], f"{kind}-{name}-{c:05d}.{ext}" if name else f"{kind}-{c:05d}.{ext}")

    def save_part(self, path: str, obj) -> None:
        """Save a finished chunk (a dict of arrays for an ``.npz`` path); the parts directory and its manifest are
        made with the first one, so a run that fails before (a model that does not load, a prompt too long)
        leaves nothing behind."""
        parts = self.paths["parts"]
        if not os.path.isdir(parts):
            os.makedirs(parts)
            rio.save_json(os.path.join(parts, "manifest.json"), self.s.to_dict())
        if path.endswith(".npz"):
            rio.save_npz(path, **obj)
        else:
            rio.save_json(path, obj)

    def bar(self, total: int, desc: str, unit: str):
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, disable=not self.progress, file=sys.stderr)


def _chunks(n, size):
    return [(a, min(a + size, n)) for a in range(0, n, size)]


# --------------------------------------------------------------------------------------------------------
# The steps
# --------------------------------------------------------------------------------------------------------

def prepare(s: Settings, prompts, pairs, out: str, device: str, *, overwrite=False, progress=True, log=None):
    """Check ``--out`` against what is already there; a :class:`Run`, or None when ``out`` is complete with
    these settings. Stale chunks (other settings) are refused, or dropped with ``overwrite``."""
    log = log or (lambda m: print(f"rmtheory score: {m}", file=sys.stderr))
    paths = output_paths(out)
    settings = s.to_dict()
    parts = paths["parts"]
    if os.path.exists(paths["manifest"]) and not os.path.exists(parts):
        done = rio.load_json(paths["manifest"])
        diff = differences(settings, {**SETTING_DEFAULTS, **done.get("settings", {})})
        if not diff and done.get("complete") and os.path.exists(paths["rewards"]):
            log(f"{out} is complete with these settings; nothing to do")
            return None
        if diff and not overwrite:
            raise ScoreError(f"--out: {out} was written with other settings ({'; '.join(diff[:3])}); "
                             "use another --out or --overwrite")
    if os.path.exists(out) and not os.path.exists(paths["manifest"]) and not overwrite:
        raise ScoreError(f"--out: {out} exists and was not written by rmtheory score; use another --out or --overwrite")
    if os.path.isdir(parts):
        mpath = os.path.join(parts, "manifest.json")
        old = {**SETTING_DEFAULTS, **rio.load_json(mpath)} if os.path.exists(mpath) else {}
        files = sorted(f for f in os.listdir(parts) if f != "manifest.json")
        stale = stale_chunks(settings, old, files) if old else files
        if stale and not overwrite:
            diff = differences(settings, old, keys=SCORE_KEYS | PAIR_KEYS | {"rms"})
            raise ScoreError(f"--out: the unfinished run in {parts} has {len(stale)} chunk(s) made with other settings "
                             f"({'; '.join(diff[:3])}); rerun with the same settings to resume, or pass --overwrite "
                             "to drop them")
        for f in stale:
            os.remove(os.path.join(parts, f))
        if old != settings:
            rio.save_json(mpath, settings)
    return Run(s, prompts, pairs, paths, device, log, progress)


def sample(run: Run) -> None:
    """K responses per prompt from the policy, the only model in memory; every prompt is checked against the
    policy's context before the first is sampled."""
    s = run.s
    todo = [c for c in range(len(run.p_chunks)) if not os.path.exists(run.part("gen", c))]
    if not todo:
        return
    run.log(f"policy {s.policy}: sampling K={s.k} for {len(run.prompts)} prompts on {run.device} ({s.dtype}); "
            f"{len(run.p_chunks) - len(todo)}/{len(run.p_chunks)} chunks already done")
    with _models.load("policy", s.policy, "--policy", run.device, s.dtype) as lm:
        ids, n_cut = _models.encode_prompts(lm, run.prompts, s)
        if n_cut:
            run.log(f"{n_cut} prompt(s) truncated to their last {_models.context_length(lm) - s.max_new_tokens} "
                    "tokens (--truncate-prompts)")
        with run.bar(sum(b - a for a, b in (run.p_chunks[c] for c in todo)), "sampling", "prompt") as bar:
            for c in todo:
                a, b = run.p_chunks[c]
                resp, resp_ids = [], []
                for i in range(a, b):
                    texts, toks = _models.generate(lm, ids[i], run.prompts[i]["prompt_id"], s, run.device)
                    resp.append(texts)
                    resp_ids.append(toks)
                    bar.update(1)
                run.save_part(run.part("gen", c), {"prompt_ids": [p["prompt_id"] for p in run.prompts[a:b]],
                                                   "responses": resp, "response_ids": resp_ids})


def score(run: Run) -> None:
    """Every sample and every off-policy pair scored by each reward model in turn, one in memory at a time."""
    s = run.s
    for name, path in s.rms:
        option = "--ground-truth" if name == s.ground_truth else "--rm"
        todo = [c for c in range(len(run.p_chunks)) if not os.path.exists(run.part("score", c, name))]
        todo_q = [c for c in range(len(run.q_chunks)) if not os.path.exists(run.part("pairs", c, name))]
        if not todo and not todo_q:
            continue
        run.log(f"{name} ({path}): scoring {len(todo)} sample chunk(s), {len(todo_q)} pair chunk(s)")
        n_texts = (sum(b - a for a, b in (run.p_chunks[c] for c in todo)) * s.k
                   + sum(2 * (b - a) for a, b in (run.q_chunks[c] for c in todo_q)))
        with _models.load("rm", path, f"{option} {name}", run.device, s.dtype) as rm, \
                run.bar(n_texts, f"{name} scoring", "text") as bar:
            for c in todo:
                a, b = run.p_chunks[c]
                gen = rio.load_json(run.part("gen", c))
                texts = [rm_input(rm.tokenizer, p["prompt"], r, s.chat_template)
                         for p, rs in zip(run.prompts[a:b], gen["responses"]) for r in rs]
                scores = _models.score_texts(rm, texts, s.batch_size, run.device, s.max_length, bar.update)
                run.save_part(run.part("score", c, name), {"scores": scores.reshape(b - a, s.k)})
            for c in todo_q:
                a, b = run.q_chunks[c]
                texts = [rm_input(rm.tokenizer, q["prompt"], q[side], s.chat_template) for q in run.pairs[a:b]
                         for side in ("chosen", "rejected")]
                scores = _models.score_texts(rm, texts, s.batch_size, run.device, s.max_length, bar.update)
                run.save_part(run.part("pairs", c, name), {"scores": scores.reshape(b - a, 2)})


def write_tables(run: Run) -> None:
    """The rewards table, the samples and (with pairs) the pairs table, atomically, from the chunks."""
    s, paths = run.s, run.paths
    names = [n for n, _ in s.rms]
    samples, cols = [], {n: [] for n in names}
    for c, (a, b) in enumerate(run.p_chunks):
        gen = rio.load_json(run.part("gen", c))
        for p, rs in zip(run.prompts[a:b], gen["responses"]):
            samples += [{"prompt_id": p["prompt_id"], "sample_id": j, "response": r} for j, r in enumerate(rs)]
        for n in names:
            v = rio.load_json(run.part("score", c, n))["scores"]
            cols[n] += [np.nan if x is None else x for row in v for x in row]
    rows = [[smp["prompt_id"], smp["sample_id"]] + [cols[n][i] for n in names] for i, smp in enumerate(samples)]
    n_bad = sum(1 for r in rows for x in r[2:] if not np.isfinite(x))
    rio.save_csv(paths["rewards"], ["prompt_id", "sample_id"] + names, rows)
    rio.save_text(paths["samples"], "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in samples))
    run.written += [paths["rewards"], paths["samples"]]
    if run.pairs:
        pcols = {n: [] for n in names}
        for c in range(len(run.q_chunks)):
            for n in names:
                pcols[n] += rio.load_json(run.part("pairs", c, n))["scores"]
        header = ["prompt_id"] + [f"{n}.{side}" for n in names for side in ("chosen", "rejected")]
        prow = [[q["prompt_id"]] + [np.nan if x is None else x for n in names for x in pcols[n][i]]
                for i, q in enumerate(run.pairs)]
        rio.save_csv(paths["pairs"], header, prow)
        run.written.append(paths["pairs"])
    elif os.path.exists(paths["pairs"]):
        os.remove(paths["pairs"])  # a stale pairs table from an earlier run must not be read as this run's
    if n_bad:
        run.log(f"warning: {n_bad} non-finite score(s) written as empty cells (missing); try --dtype float32")


def gradients(run: Run) -> None:
    """With ``--teaching-rate``: each sample's score vector ∇_θ log π(y|x) under the policy (float32, its
    parameters ``--grad-params``), projected to ``--sketch-dim`` (:func:`rmtheory.hf.grads.sample_grads`), saved
    per chunk; the policy is the only model in memory."""
    s = run.s
    if not s.teaching_rate:
        return
    todo = [c for c in range(len(run.p_chunks)) if not os.path.exists(run.part("grads", c, ext="npz"))]
    if not todo:
        return
    from . import grads as _grads

    run.log(f"policy {s.policy}: score vectors of {len(todo)} chunk(s) of samples (--teaching-rate, "
            f"{'exact' if s.sketch_dim is None else f'sketch dim {s.sketch_dim}'})")
    with _models.load("policy", s.policy, "--policy", run.device, "float32") as lm, \
            run.bar(sum(b - a for a, b in (run.p_chunks[c] for c in todo)) * s.k, "gradients", "sample") as bar:
        ids, _ = _models.encode_prompts(lm, run.prompts, s)
        for c in todo:
            a, b = run.p_chunks[c]
            gen = rio.load_json(run.part("gen", c))
            if "response_ids" not in gen:
                raise ScoreError(f"--teaching-rate: the sampled chunks in {run.paths['parts']} hold no token ids "
                                 "(made by an older version); pass --overwrite to sample again")
            done = [0]

            def advance(n, _total, done=done):
                bar.update(n - done[0])
                done[0] = n

            g, info = _grads.sample_grads(lm.model, [ids[i] for i in range(a, b) for _ in range(s.k)],
                                          [r for rs in gen["response_ids"] for r in rs], grad_params=s.grad_params,
                                          sketch_dim=s.sketch_dim, seed=s.seed, batch_size=s.batch_size,
                                          temperature=s.temperature, progress=advance)
            meta = {k: v for k, v in info.items() if k != "params" and np.ndim(v) == 0}
            run.save_part(run.part("grads", c, ext="npz"), {"g": g, **meta})


def write_sketches(run: Run) -> None:
    """With ``--teaching-rate``: ``<stem>_sketches.npz``, the sketch file of ``rmtheory evaluate --sketches``."""
    path = run.paths["sketches"]
    if not run.s.teaching_rate:
        if os.path.exists(path):
            os.remove(path)  # a stale sketch file from an earlier run must not be read as this run's
        return
    from . import grads as _grads

    g, pids, sids, meta = [], [], [], {}
    for c, (a, b) in enumerate(run.p_chunks):
        part = rio.load_npz(run.part("grads", c, ext="npz"))
        g.append(part.pop("g"))
        meta = {k: v.item() for k, v in part.items()}
        pids += [p["prompt_id"] for p in run.prompts[a:b] for _ in range(run.s.k)]
        sids += [j for _ in range(a, b) for j in range(run.s.k)]
    run.written.append(_grads.write_sketches(path, pids, sids, np.concatenate(g), meta))


def write_rates(run: Run) -> None:
    """With ``--teaching-rate`` and exact gradients (no ``--sketch-dim``): ``<stem>_rates.json``, per model the
    pooled and per-prompt rates and the split-sample Adam-geometry and sign rates (:class:`rmtheory.RateAccumulator`;
    against the ``--ground-truth`` model when given, else the self rates only), on globally z-scored scores,
    streamed over the saved gradient chunks: memory O(D × models), never O(N × D). A model with a missing score is
    left out of this file (``rmtheory evaluate`` still reports it)."""
    s, path = run.s, run.paths["rates"]
    if not s.teaching_rate or s.sketch_dim is not None:
        if os.path.exists(path):
            os.remove(path)  # a stale rates file from an earlier run must not be read as this run's
        return
    import time

    from .._optimizer_rate import ADAM_EPS, RateAccumulator
    from .._rm_eval import normalisation_stats, normalise

    t0 = time.perf_counter()
    names = [n for n, _ in s.rms]
    cols = {n: [np.asarray(rio.load_json(run.part("score", c, n))["scores"], np.float64)
                for c in range(len(run.p_chunks))] for n in names}
    cols = {n: np.concatenate(v) for n, v in cols.items()}
    skipped = [n for n in names if not np.isfinite(cols[n]).all()]
    used = [n for n in names if n not in skipped]
    out = {"models": {}, "skipped": skipped, "batch": s.rate_minibatch, "eps": ADAM_EPS, "ground_truth": s.ground_truth}
    if used:
        z = np.stack([normalise(cols[n], normalisation_stats(cols[n], "global")) for n in used], -1)   # [P, K, S]
        measure = used.index(s.ground_truth) if s.ground_truth in used else None
        acc = None
        for c, (a, b) in enumerate(run.p_chunks):
            g = rio.load_npz(run.part("grads", c, ext="npz"))["g"]
            if acc is None:
                acc = RateAccumulator(g.shape[1], len(used), s.k, measure=measure)
            acc.add(z[a:b], g.reshape(b - a, s.k, -1))
        res = acc.rates(s.rate_minibatch, ADAM_EPS)
        out["models"] = {n: res[i]._asdict() for i, n in enumerate(used)}
        out["param_dim"] = int(acc.dim)
        out["accumulator_bytes"] = int(acc.group_u.nbytes + acc.sq.nbytes + acc.own.nbytes)
    out["seconds"] = time.perf_counter() - t0
    rio.save_json(path, out)
    run.written.append(path)
    if skipped:
        run.log(f"warning: {', '.join(skipped)}: missing scores, left out of {path}")


# The steps in order: each takes the Run, skips what its saved chunks already hold, and adds the files it writes
# to run.written. An optional step (like "gradients" for --teaching-rate) returns at once when its setting is
# off; its setting is in Settings (default in SETTING_DEFAULTS) and its chunk kind, with the settings it depends
# on, in _inputs.CHUNK_KEYS, so that resume stays exact.
STEPS = (("sample", sample), ("score", score), ("gradients", gradients), ("tables", write_tables),
         ("sketches", write_sketches), ("rates", write_rates))


def finish(run: Run) -> None:
    """The manifest (complete, with the settings and files), then the parts go; one line lists every file."""
    paths = run.paths
    seconds = time.perf_counter() - run.t0
    rio.save_json(paths["manifest"], {"complete": True, "settings": run.s.to_dict(), "files": list(run.written),
                                      "n_prompts": len(run.prompts), "n_pairs": len(run.pairs or []),
                                      "seconds": round(seconds, 3)})
    if os.path.isdir(paths["parts"]):
        shutil.rmtree(paths["parts"])
    run.log(f"wrote {', '.join(run.written + [paths['manifest']])} in {seconds:.1f} s")


def run(s: Settings, prompts: list[dict], pairs: list[dict] | None, out: str, device: str, *,
        overwrite: bool = False, progress: bool = True, log=None) -> dict:
    """Generate, score and write the tables (resuming from ``<out>.parts/``); returns the output paths."""
    r = prepare(s, prompts, pairs, out, device, overwrite=overwrite, progress=progress, log=log)
    if r is None:
        return output_paths(out)
    for _, step in STEPS:
        step(r)
    finish(r)
    return r.paths


# --------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------

DESCRIPTION = """\
Sample K responses per prompt from a Hugging Face causal-LM policy, score them (and optional
off-policy pairs) with each reward model, and write the tables that `rmtheory evaluate` reads: --out
(the rewards CSV) and, beside it, <stem>_pairs.csv, <stem>_samples.jsonl and <stem>_score.json.
Saved chunks under <out>.parts/ make a re-run resume. Needs the [hf] extra (pip install ".[hf]")."""

EPILOG = """\
examples:
  rmtheory score --policy gpt2 --rm rm=path/to/rm --prompts prompts.jsonl --out rewards.csv
  rmtheory score --policy ./policy --rm a=./rm_a --rm b=./rm_b --ground-truth gold=./gold \\
      --prompts prompts.jsonl --off-policy pairs.jsonl --k 8 --out rewards.csv --then-evaluate
  rmtheory score --policy ./policy --rm a=./rm_a --prompts prompts.jsonl --out rewards.csv \\
      --teaching-rate --sketch-dim 4096"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description, parser.epilog = DESCRIPTION, EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    a = parser.add_argument
    a("--policy", required=True, metavar="PATH", help="causal LM: a local directory, or a Hub name (tried only when "
                                                      "no local path of that name exists)")
    a("--rm", action="append", required=True, metavar="NAME=PATH",
      help="a reward model (sequence classification, one output); repeat for each; NAME is its column")
    a("--ground-truth", metavar="NAME=PATH", help="a reward model that plays the ground truth (its column is last)")
    a("--prompts", required=True, metavar="JSONL", help='one {"prompt_id": ..., "prompt": ...} per line')
    a("--off-policy", metavar="JSONL", help='chosen/rejected pairs: {"prompt_id", "prompt", "chosen", "rejected"}')
    a("--k", type=int, default=10, help="samples per prompt (default 10)")
    a("--out", required=True, metavar="CSV", help="rewards table; <stem>_pairs.csv, <stem>_samples.jsonl and "
                                                  "<stem>_score.json go beside it")
    a("--seed", type=int, default=0, help="sampling seed (default 0); also the bootstrap seed of --then-evaluate")
    a("--temperature", type=float, default=1.0, help="sampling temperature (default 1; 0 = greedy)")
    a("--top-p", type=float, default=1.0, help="nucleus sampling mass in (0, 1] (default 1: off)")
    a("--top-k", type=int, default=0, help="top-k filter (default 0: off)")
    a("--max-new-tokens", type=int, default=256, help="response length cap in tokens (default 256)")
    a("--truncate-prompts", action="store_true",
      help="keep the last (context - max-new-tokens) tokens of a prompt too long for the policy "
           "(default: refuse it, naming the prompt)")
    a("--batch-size", type=int, default=16, help="sequences per generate/scoring batch (default 16)")
    a("--chunk-prompts", type=int, default=32,
      help="prompts per saved chunk: the unit of resume (default 32)")
    a("--max-length", type=int, default=None, help="truncate reward-model inputs to this many tokens "
                                                   "(default: the model's limit)")
    a("--device", default="auto", help="auto (CUDA if available, else CPU), cpu, cuda, cuda:N")
    a("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
      help="model dtype (auto: bfloat16/float16 on CUDA, float32 on CPU)")
    a("--no-chat-template", action="store_true", help="feed raw text even when a tokenizer has a chat template")
    a("--overwrite", action="store_true", help="start over when --out holds a run with other settings")
    a("--no-progress", action="store_true", help="no progress bars")
    a("--then-evaluate", action="store_true", help="print the `rmtheory evaluate` report card when done")
    a("--teaching-rate", action="store_true",
      help="also write <stem>_sketches.npz: each sample's score vector grad log pi(y|x) (float32), so that "
           "`rmtheory evaluate --sketches` reports rate_G and rate_self (needs --k >= 2, top-p 1, top-k 0)")
    a("--sketch-dim", type=int, default=None, metavar="D",
      help="project the score vectors to D dimensions (seeded Rademacher sketch; default: exact, all D parameters)")
    a("--rate-minibatch", type=int, default=64, metavar="M",
      help="with --teaching-rate and exact gradients: samples per optimiser step m of the Adam-geometry rate in "
           "<stem>_rates.json (default 64)")
    a("--grad-params", default=None, metavar="SPEC",
      help="parameters the gradient is taken over: all (default), last:N (the last N transformer blocks) or "
           "comma-separated regular expressions of parameter names")


def main(args) -> int:
    from ..cli import fail

    try:
        import torch  # noqa: F401
        import transformers
    except ImportError:
        return fail("score", INSTALL_HINT)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        prompts = read_prompts(args.prompts)
        pairs = read_pairs(args.off_policy, prompts) if args.off_policy else None
        _inputs.check_options(args)
        models = _inputs.named_models(args)
        options = [f"--rm {n}" for n, _ in models[:len(args.rm)]] + [f"--ground-truth {n}" for n, _ in
                                                                     models[len(args.rm):]]
        for option, path in [("--policy", args.policy)] + [(o, p) for o, (_, p) in zip(options, models)]:
            model_source(path, option)  # a mistyped local path fails here, before anything is loaded or written
        device = _models.resolve_device(args.device)
        s = _inputs.settings(args, device, _models.resolve_dtype(args.dtype, device))
        paths = run(s, prompts, pairs, args.out, device, overwrite=args.overwrite, progress=not args.no_progress)
    except (ScoreError, OSError) as e:
        return fail("score", e)
    except KeyboardInterrupt:
        parts = output_paths(args.out)["parts"]
        kept = f"finished chunks are kept in {parts}" if os.path.isdir(parts) else "no chunk had finished"
        print(f"\nrmtheory score: interrupted; {kept}: run the same command again to resume", file=sys.stderr,
              flush=True)
        return 130
    if args.then_evaluate:
        from ..evaluate import InputError, evaluate

        try:
            report = evaluate(paths["rewards"], off_policy=paths["pairs"] if pairs else None,
                              ground_truth=s.ground_truth, seed=args.seed,
                              sketches=paths["sketches"] if s.teaching_rate else None)
        except InputError as e:
            return fail("score", e)
        for w in report.warnings:
            print(f"rmtheory evaluate: warning: {w}", file=sys.stderr)
        print(report.format_table())
    return 0
