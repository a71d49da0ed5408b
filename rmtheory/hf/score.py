"""``rmtheory score``: from Hugging Face checkpoints to the tables that ``rmtheory evaluate`` reads.

1. Loads a causal-LM policy (``AutoModelForCausalLM``: a local directory or anything ``from_pretrained``
   accepts) and samples K responses per prompt (seed, temperature, top-p, top-k, max-new-tokens), through the
   tokenizer's chat template when it has one.
2. Scores every (prompt, response) with each reward model (``AutoModelForSequenceClassification`` with one
   output, each with its own tokenizer and chat template) and, with ``--ground-truth``, with a model that plays
   the ground truth.
3. Scores the off-policy chosen/rejected pairs of ``--off-policy``, if given.
4. Writes ``--out`` (CSV: ``prompt_id, sample_id``, one column per reward model, the ground-truth column
   last), ``<stem>_pairs.csv`` (``prompt_id, M.chosen, M.rejected`` per model), ``<stem>_samples.jsonl``
   (the sampled responses) and ``<stem>_score.json`` (the settings), every file atomically.

How it runs: one model in memory at a time (all samples are generated first, then each reward model scores
everything), in chunks of ``--chunk-prompts`` prompts, each chunk's result saved under ``<out>.parts/`` as
soon as it is done; a re-run with the same settings skips the saved chunks and gives the same files as an
uninterrupted run. The K samples of a prompt are one ``generate`` call seeded from (``--seed``, prompt_id), so
they depend neither on the chunking nor on the order of the prompts. Scoring batches (``--batch-size`` texts,
sorted by length within a chunk) are padded; a score equals the reward model's forward pass on that text
alone up to float rounding (~1e-6 relative in float32).

Input files (JSON Lines, one object per line): ``--prompts``: ``{"prompt_id": "p0", "prompt": "..."}``
(``prompt_id`` optional: the 0-based row number); ``--off-policy``: ``{"prompt_id": ..., "prompt": ...,
"chosen": ..., "rejected": ...}`` (``prompt_id`` optional when the prompt text is one of ``--prompts``).

Without a chat template a reward model reads ``prompt + " " + response`` (no space added when one side already
has it); see :func:`rm_input`.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time

import numpy as np

from .. import io as rio

INSTALL_HINT = ('rmtheory score needs the optional Hugging Face extra (torch, transformers, tokenizers): '
                'python -m pip install "rmtheory[hf]"  (from a clone: python -m pip install ".[hf]")')
RESERVED = ("prompt_id", "sample_id")


class ScoreError(ValueError):
    """Bad input or settings (the CLI prints one line naming the argument and exits with status 2)."""


# --------------------------------------------------------------------------------------------------------
# Inputs and settings
# --------------------------------------------------------------------------------------------------------

def parse_named(value: str, option: str) -> tuple[str, str]:
    """``NAME=PATH`` → (name, path); the name becomes a column of the rewards table."""
    name, sep, path = value.partition("=")
    name, path = name.strip(), path.strip()
    if not sep or not name or not path:
        raise ScoreError(f"{option}: expected NAME=PATH, got {value!r}")
    if "." in name or "," in name or name in RESERVED or any(c.isspace() for c in name):
        raise ScoreError(f"{option}: invalid name {name!r} (no '.', ',' or spaces; not prompt_id/sample_id)")
    return name, path


def _read_jsonl(path: str, option: str, fields: tuple[str, ...]) -> list[dict]:
    if not os.path.isfile(path):
        raise ScoreError(f"{option}: no such file: {path}")
    rows, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise ScoreError(f"{option}: {path} line {line_no}: not valid JSON ({e})") from None
            if not isinstance(obj, dict):
                raise ScoreError(f"{option}: {path} line {line_no}: expected a JSON object")
            for k in fields:
                if not isinstance(obj.get(k), str):
                    raise ScoreError(f"{option}: {path} line {line_no}: field '{k}' must be a string")
            pid = obj.get("prompt_id", str(len(rows)) if option == "--prompts" else None)
            if pid is None:  # a pair without an id: resolved from its prompt text by read_pairs
                rows.append({"prompt_id": None, "line": line_no, **{k: obj[k] for k in fields}})
                continue
            if not isinstance(pid, (str, int)) or isinstance(pid, bool) or str(pid).strip() == "":
                raise ScoreError(f"{option}: {path} line {line_no}: prompt_id must be a non-empty string or integer")
            pid = str(pid).strip()
            if option == "--prompts":
                if pid in seen:
                    raise ScoreError(f"{option}: {path} line {line_no}: duplicated prompt_id {pid!r}")
                seen.add(pid)
            rows.append({"prompt_id": pid, **{k: obj[k] for k in fields}})
    if not rows:
        raise ScoreError(f"{option}: {path} has no rows")
    return rows


def read_prompts(path: str) -> list[dict]:
    """Rows ``{"prompt_id", "prompt"}`` of a prompts JSONL file (ids default to the 0-based row number)."""
    return _read_jsonl(path, "--prompts", ("prompt",))


def read_pairs(path: str, prompts: list[dict] | None = None) -> list[dict]:
    """Rows ``{"prompt_id", "prompt", "chosen", "rejected"}`` of an off-policy pairs JSONL file. A pair without
    ``prompt_id`` takes the id of the prompt in ``prompts`` with the same text (an error if there is none)."""
    rows = _read_jsonl(path, "--off-policy", ("prompt", "chosen", "rejected"))
    by_text = {}
    for p in prompts or []:
        by_text.setdefault(p["prompt"], p["prompt_id"])
    for r in rows:
        line = r.pop("line", None)
        if r["prompt_id"] is None:
            r["prompt_id"] = by_text.get(r["prompt"])
            if r["prompt_id"] is None:
                raise ScoreError(f"--off-policy: {path} line {line}: no prompt_id, and its prompt is not in --prompts")
    return rows


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything that determines the output; a resumed run must have the same (see ``<stem>_score.json``)."""

    policy: str
    rms: tuple            # ((name, path), ...), the ground-truth model last when given
    ground_truth: str | None
    prompts_sha256: str
    pairs_sha256: str | None
    k: int
    seed: int
    temperature: float
    top_p: float
    top_k: int
    max_new_tokens: int
    batch_size: int
    chunk_prompts: int
    chat_template: bool
    max_length: int | None
    device_type: str
    dtype: str

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["rms"] = [list(x) for x in self.rms]
        return d


def prompt_seed(seed: int, prompt_id: str) -> int:
    """The torch seed of one prompt's K samples: a hash of (seed, prompt_id), so samples do not depend on the
    chunking or on where the prompt is in the file."""
    return int.from_bytes(hashlib.sha256(f"{seed}\0{prompt_id}".encode()).digest()[:8], "little") & (2 ** 63 - 1)


def _join(prompt: str, response: str) -> str:
    if not prompt or not response or prompt[-1].isspace() or response[0].isspace():
        return prompt + response
    return prompt + " " + response


def policy_input(tokenizer, prompt: str, chat_template: bool = True) -> tuple[str, bool]:
    """(text, add_special_tokens) the policy is conditioned on: the chat template with a generation prompt
    when the tokenizer has one (and ``chat_template``), else the raw prompt."""
    if chat_template and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True), False
    return prompt, True


def rm_input(tokenizer, prompt: str, response: str, chat_template: bool = True) -> tuple[str, bool]:
    """(text, add_special_tokens) a reward model scores: its own chat template over a user/assistant
    exchange when its tokenizer has one (and ``chat_template``), else ``prompt`` and ``response`` joined by a
    space (none added when one side already has whitespace there)."""
    if chat_template and getattr(tokenizer, "chat_template", None):
        msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        return tokenizer.apply_chat_template(msgs, tokenize=False), False
    return _join(prompt, response), True


# --------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------

def resolve_device(spec: str) -> str:
    import torch

    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError):
        raise ScoreError(f"--device: unknown device {spec!r} (auto, cpu, cuda, cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ScoreError(f"--device: {spec!r} requested but CUDA is not available (torch {torch.__version__})")
    return spec


def resolve_dtype(spec: str, device: str) -> str:
    import torch

    if spec == "auto":
        if device.startswith("cuda"):
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return "float32"
    return spec


def _torch_dtype(name):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def _load(kind: str, path: str, option: str, device: str, dtype: str):
    import transformers

    cls = transformers.AutoModelForCausalLM if kind == "policy" else transformers.AutoModelForSequenceClassification
    try:
        tok = transformers.AutoTokenizer.from_pretrained(path)
        model = cls.from_pretrained(path, dtype=_torch_dtype(dtype))
    except (OSError, ValueError) as e:
        raise ScoreError(f"{option}: cannot load {path!r}: {' '.join(str(e).split())[:300]}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    if kind != "policy" and model.config.num_labels != 1:
        raise ScoreError(f"{option}: {path!r} has {model.config.num_labels} outputs; a reward model needs one "
                         "(num_labels=1)")
    model.to(device).eval()
    return model, tok


def _free(model):
    import gc

    import torch

    del model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def generate(model, tokenizer, prompt: str, prompt_id: str, s: Settings, device: str) -> list[str]:
    """K responses to one prompt: one seeded ``generate`` call (split into ``batch_size`` rows when K is larger,
    drawn one after another from the same seeded stream)."""
    import torch

    text, special = policy_input(tokenizer, prompt, s.chat_template)
    enc = tokenizer(text, return_tensors="pt", add_special_tokens=special).to(device)
    n_in = enc["input_ids"].shape[1]
    eos = model.generation_config.eos_token_id
    eos = tokenizer.eos_token_id if eos is None else eos
    eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
    sample = s.temperature > 0
    kw = dict(do_sample=sample, max_new_tokens=s.max_new_tokens, pad_token_id=tokenizer.pad_token_id)
    if sample:
        kw.update(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k)
    torch.manual_seed(prompt_seed(s.seed, prompt_id))
    out = []
    with torch.no_grad():
        for start in range(0, s.k, s.batch_size):
            rows = min(s.batch_size, s.k - start)
            ids = model.generate(input_ids=enc["input_ids"].expand(rows, -1),
                                 attention_mask=enc["attention_mask"].expand(rows, -1), **kw)
            for row in ids[:, n_in:].tolist():
                cut = next((i for i, t in enumerate(row) if t in eos_ids), len(row))
                out.append(tokenizer.decode(row[:cut], skip_special_tokens=True))
    return out


def score_texts(model, tokenizer, texts: list[tuple[str, bool]], batch_size: int, device: str,
                max_length: int | None = None) -> np.ndarray:
    """Reward of each (text, add_special_tokens) as float64: batches of similar length, padded, logits[:, 0]."""
    import torch

    if max_length is None:
        tml = getattr(tokenizer, "model_max_length", None)
        npos = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
        max_length = min(x for x in (tml if tml and tml < 10 ** 7 else None, npos, 10 ** 7) if x)
    lengths = [len(tokenizer(t, add_special_tokens=sp, truncation=True, max_length=max_length)["input_ids"])
               for t, sp in texts]
    order = sorted(range(len(texts)), key=lambda i: (-lengths[i], i))
    out = np.empty(len(texts), np.float64)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            groups = {}
            for i in idx:  # the add_special_tokens flag is one per tokenizer call
                groups.setdefault(texts[i][1], []).append(i)
            for special, ii in groups.items():
                enc = tokenizer([texts[i][0] for i in ii], return_tensors="pt", padding=True, truncation=True,
                                max_length=max_length, add_special_tokens=special).to(device)
                logits = model(**enc).logits[:, 0].float().cpu().numpy()
                out[ii] = logits.astype(np.float64)
    return out


# --------------------------------------------------------------------------------------------------------
# The resumable run
# --------------------------------------------------------------------------------------------------------

def output_paths(out: str) -> dict:
    stem = out[:-4] if out.lower().endswith(".csv") else out
    return {"rewards": out, "pairs": stem + "_pairs.csv", "samples": stem + "_samples.jsonl",
            "manifest": stem + "_score.json", "parts": out + ".parts"}


def _chunks(n, size):
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def _differences(a: dict, b: dict) -> list[str]:
    return [f"{k}: {b.get(k)!r} → {a.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def run(s: Settings, prompts: list[dict], pairs: list[dict] | None, out: str, device: str, *,
        overwrite: bool = False, progress: bool = True, log=None) -> dict:
    """Generate, score and write the tables (resuming from ``<out>.parts/``); returns the output paths."""
    from tqdm.auto import tqdm

    log = log or (lambda m: print(f"rmtheory score: {m}", file=sys.stderr))
    paths = output_paths(out)
    settings = s.to_dict()
    parts = paths["parts"]
    if os.path.exists(paths["manifest"]) and not os.path.exists(parts):
        done = rio.load_json(paths["manifest"])
        diff = _differences(settings, done.get("settings", {}))
        if not diff and done.get("complete") and os.path.exists(paths["rewards"]):
            log(f"{out} is complete with these settings; nothing to do")
            return paths
        if diff and not overwrite:
            raise ScoreError(f"--out: {out} was written with other settings ({'; '.join(diff[:3])}); "
                             "use another --out or --overwrite")
    if os.path.exists(out) and not os.path.exists(paths["manifest"]) and not overwrite:
        raise ScoreError(f"--out: {out} exists and was not written by rmtheory score; use another --out or --overwrite")
    if os.path.exists(parts):
        old = rio.load_json(os.path.join(parts, "manifest.json")) if os.path.exists(
            os.path.join(parts, "manifest.json")) else {}
        diff = _differences(settings, old)
        if diff:
            if not overwrite:
                raise ScoreError(f"--out: the unfinished run in {parts} has other settings ({'; '.join(diff[:3])}); "
                                 "rerun with the same settings to resume, or pass --overwrite to start over")
            shutil.rmtree(parts)
    os.makedirs(parts, exist_ok=True)
    rio.save_json(os.path.join(parts, "manifest.json"), settings)

    p_chunks = _chunks(len(prompts), s.chunk_prompts)
    q_chunks = _chunks(len(pairs), s.chunk_prompts * s.k) if pairs else []
    gen_part = lambda c: os.path.join(parts, f"gen-{c:05d}.json")  # noqa: E731
    score_part = lambda m, c: os.path.join(parts, f"score-{m}-{c:05d}.json")  # noqa: E731
    pair_part = lambda m, c: os.path.join(parts, f"pairs-{m}-{c:05d}.json")  # noqa: E731
    t0 = time.perf_counter()

    # 1. samples: the policy alone in memory
    todo = [c for c in range(len(p_chunks)) if not os.path.exists(gen_part(c))]
    if todo:
        log(f"policy {s.policy}: sampling K={s.k} for {len(prompts)} prompts on {device} ({s.dtype}); "
            f"{len(p_chunks) - len(todo)}/{len(p_chunks)} chunks already done")
        model, tok = _load("policy", s.policy, "--policy", device, s.dtype)
        for c in tqdm(todo, desc="sampling (chunks)", disable=not progress, file=sys.stderr):
            a, b = p_chunks[c]
            resp = [generate(model, tok, p["prompt"], p["prompt_id"], s, device) for p in prompts[a:b]]
            rio.save_json(os.path.join(gen_part(c)), {"prompt_ids": [p["prompt_id"] for p in prompts[a:b]],
                                                      "responses": resp})
        _free(model)

    # 2. scores: one reward model at a time
    for name, path in s.rms:
        option = "--ground-truth" if name == s.ground_truth else "--rm"
        todo = [c for c in range(len(p_chunks)) if not os.path.exists(score_part(name, c))]
        todo_q = [c for c in range(len(q_chunks)) if not os.path.exists(pair_part(name, c))]
        if not todo and not todo_q:
            continue
        log(f"{name} ({path}): scoring {len(todo)} sample chunk(s), {len(todo_q)} pair chunk(s)")
        model, tok = _load("rm", path, f"{option} {name}", device, s.dtype)
        for c in tqdm(todo, desc=f"{name} samples", disable=not progress, file=sys.stderr):
            a, b = p_chunks[c]
            gen = rio.load_json(gen_part(c))
            texts = [rm_input(tok, p["prompt"], r, s.chat_template)
                     for p, rs in zip(prompts[a:b], gen["responses"]) for r in rs]
            scores = score_texts(model, tok, texts, s.batch_size, device, s.max_length)
            rio.save_json(score_part(name, c), {"scores": scores.reshape(b - a, s.k)})
        for c in tqdm(todo_q, desc=f"{name} pairs", disable=not progress, file=sys.stderr):
            a, b = q_chunks[c]
            texts = [rm_input(tok, q["prompt"], q[side], s.chat_template) for q in pairs[a:b]
                     for side in ("chosen", "rejected")]
            scores = score_texts(model, tok, texts, s.batch_size, device, s.max_length)
            rio.save_json(pair_part(name, c), {"scores": scores.reshape(b - a, 2)})
        _free(model)

    # 3. the tables (atomic), then the manifest, then the parts go
    names = [n for n, _ in s.rms]
    samples, cols, n_bad = [], {n: [] for n in names}, 0
    for c, (a, b) in enumerate(p_chunks):
        gen = rio.load_json(gen_part(c))
        for p, rs in zip(prompts[a:b], gen["responses"]):
            samples += [{"prompt_id": p["prompt_id"], "sample_id": j, "response": r} for j, r in enumerate(rs)]
        for n in names:
            v = rio.load_json(score_part(n, c))["scores"]
            cols[n] += [np.nan if x is None else x for row in v for x in row]
    rows = [[smp["prompt_id"], smp["sample_id"]] + [cols[n][i] for n in names] for i, smp in enumerate(samples)]
    n_bad = sum(1 for r in rows for x in r[2:] if not np.isfinite(x))
    rio.save_csv(paths["rewards"], ["prompt_id", "sample_id"] + names, rows)
    rio.save_text(paths["samples"], "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in samples))
    written = [paths["rewards"], paths["samples"]]
    if pairs:
        pcols = {n: [] for n in names}
        for c in range(len(q_chunks)):
            for n in names:
                pcols[n] += rio.load_json(pair_part(n, c))["scores"]
        header = ["prompt_id"] + [f"{n}.{side}" for n in names for side in ("chosen", "rejected")]
        prow = [[q["prompt_id"]] + [np.nan if x is None else x for n in names for x in pcols[n][i]]
                for i, q in enumerate(pairs)]
        rio.save_csv(paths["pairs"], header, prow)
        written.append(paths["pairs"])
    elif os.path.exists(paths["pairs"]):
        os.remove(paths["pairs"])  # a stale pairs table from an earlier run must not be read as this run's
    if n_bad:
        log(f"warning: {n_bad} non-finite score(s) written as empty cells (missing); try --dtype float32")
    rio.save_json(paths["manifest"], {"complete": True, "settings": settings, "files": written, "n_prompts": len(prompts),
                                      "n_pairs": len(pairs or []), "seconds": round(time.perf_counter() - t0, 3)})
    shutil.rmtree(parts)
    log(f"wrote {', '.join(written)}")
    return paths


# --------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------

def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Sample K responses per prompt from a Hugging Face causal-LM policy, score them (and "
                          "optional off-policy pairs) with each reward model, and write the tables that "
                          "`rmtheory evaluate` reads. Needs the [hf] extra.")
    a = parser.add_argument
    a("--policy", required=True, metavar="PATH", help="causal LM (directory or from_pretrained name)")
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
    a("--batch-size", type=int, default=16, help="sequences per generate/scoring batch (default 16)")
    a("--chunk-prompts", type=int, default=32,
      help="prompts per saved chunk: the unit of progress and resume (default 32)")
    a("--max-length", type=int, default=None, help="truncate reward-model inputs to this many tokens "
                                                   "(default: the model's limit)")
    a("--device", default="auto", help="auto (CUDA if available, else CPU), cpu, cuda, cuda:N")
    a("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
      help="model dtype (auto: bfloat16/float16 on CUDA, float32 on CPU)")
    a("--no-chat-template", action="store_true", help="feed raw text even when a tokenizer has a chat template")
    a("--overwrite", action="store_true", help="start over when --out holds a run with other settings")
    a("--no-progress", action="store_true", help="no progress bars")
    a("--then-evaluate", action="store_true", help="print the `rmtheory evaluate` report card when done")


def _settings(args, prompts_path, pairs_path, device, dtype) -> Settings:
    for opt, v, lo in (("--k", args.k, 1), ("--max-new-tokens", args.max_new_tokens, 1),
                       ("--batch-size", args.batch_size, 1), ("--chunk-prompts", args.chunk_prompts, 1),
                       ("--top-k", args.top_k, 0)):
        if v < lo:
            raise ScoreError(f"{opt} must be >= {lo}; got {v}")
    if args.max_length is not None and args.max_length < 2:
        raise ScoreError(f"--max-length must be >= 2; got {args.max_length}")
    if not (np.isfinite(args.temperature) and args.temperature >= 0):
        raise ScoreError(f"--temperature must be >= 0; got {args.temperature}")
    if not 0 < args.top_p <= 1:
        raise ScoreError(f"--top-p must lie in (0, 1]; got {args.top_p}")
    if not args.out.lower().endswith(".csv"):
        raise ScoreError(f"--out must be a .csv path; got {args.out!r}")
    rms = [parse_named(v, "--rm") for v in args.rm]
    gt = parse_named(args.ground_truth, "--ground-truth") if args.ground_truth else None
    names = [n for n, _ in rms] + ([gt[0]] if gt else [])
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ScoreError(f"--rm/--ground-truth: name(s) used twice: {', '.join(dup)}")
    return Settings(policy=args.policy, rms=tuple(rms + ([gt] if gt else [])), ground_truth=gt[0] if gt else None,
                    prompts_sha256=_sha256(prompts_path), pairs_sha256=_sha256(pairs_path) if pairs_path else None,
                    k=args.k, seed=args.seed, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                    max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, chunk_prompts=args.chunk_prompts,
                    chat_template=not args.no_chat_template, max_length=args.max_length,
                    device_type=device.split(":")[0], dtype=dtype)


def main(args) -> int:
    def fail(msg):
        print(f"rmtheory score: error: {' '.join(str(msg).split())}", file=sys.stderr)
        return 2

    try:
        import torch  # noqa: F401
        import transformers
    except ImportError:
        return fail(INSTALL_HINT)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        prompts = read_prompts(args.prompts)
        pairs = read_pairs(args.off_policy, prompts) if args.off_policy else None
        device = resolve_device(args.device)
        s = _settings(args, args.prompts, args.off_policy, device, resolve_dtype(args.dtype, device))
        paths = run(s, prompts, pairs, args.out, device, overwrite=args.overwrite, progress=not args.no_progress)
    except ScoreError as e:
        return fail(e)
    except OSError as e:
        return fail(e)
    if args.then_evaluate:
        from ..evaluate import InputError, evaluate

        try:
            report = evaluate(paths["rewards"], off_policy=paths["pairs"] if pairs else None,
                              ground_truth=s.ground_truth, seed=args.seed)
        except InputError as e:
            return fail(e)
        for w in report.warnings:
            print(f"rmtheory evaluate: warning: {w}", file=sys.stderr)
        print(report.format_table())
    return 0
