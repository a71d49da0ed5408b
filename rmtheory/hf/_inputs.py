"""``rmtheory score``'s inputs, settings and files, with no torch: the prompts and pairs JSON Lines files, the
``NAME=PATH`` options, where a model comes from (a local directory or a Hub name), :class:`Settings`, the
output paths, and which saved chunks a change of settings makes stale. Everything here runs (and is tested)
without the ``[hf]`` extra; the models are :mod:`rmtheory.hf._models`, the run and CLI :mod:`rmtheory.hf.score`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np

from .. import io

INSTALL_HINT = ('rmtheory score needs the optional Hugging Face extra (torch, transformers, tokenizers): '
                'python -m pip install "rmtheory[hf]"  (from a clone: python -m pip install ".[hf]")')
RESERVED = ("prompt_id", "sample_id")


class ScoreError(ValueError):
    """Bad input or settings (the CLI prints one line naming the argument and exits with status 2)."""


# --------------------------------------------------------------------------------------------------------
# Options and input files
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


def model_source(path: str, option: str) -> str:
    """Where ``path`` is loaded from: ``"local"`` (an existing directory) or ``"hub"`` (a Hugging Face Hub name,
    tried only when no local path of that name exists). Raises ScoreError for a path that does not exist and
    cannot be a Hub name: it starts with ``/``, ``.`` or ``~``, has a backslash or more than one ``/``, or its
    first component is an existing local directory (``demo/polcy`` next to ``demo/``), and for a local file."""
    if os.path.isdir(path):
        return "local"
    if os.path.exists(path):
        raise ScoreError(f"{option} {path}: not a directory (a checkpoint directory with config.json expected)")
    parts = path.split("/")
    looks_local = (path.startswith(("/", ".", "~")) or "\\" in path or len(parts) > 2 or path.endswith("/")
                   or (len(parts) == 2 and os.path.isdir(parts[0])) or not path.strip())
    if looks_local:
        raise ScoreError(f"{option} {path}: no such directory")
    return "hub"


def _lines(path: str, option: str):
    """(line number, text) of a UTF-8 file (a leading BOM ignored); a line that is not UTF-8 is an error that
    names the file, the line and the byte."""
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                yield line_no, raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise ScoreError(f"{option}: {path} line {line_no}: not UTF-8 (byte 0x{raw[e.start]:02x} at "
                                 f"position {e.start + 1}); save the file as UTF-8") from None


def _read_jsonl(path: str, option: str, fields: tuple[str, ...]) -> list[dict]:
    if not os.path.isfile(path):
        raise ScoreError(f"{option}: no such file: {path}")
    rows, seen = [], set()
    for line_no, line in _lines(path, option):
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


# --------------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------------

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
    truncate_prompts: bool = False
    teaching_rate: bool = False   # per-sample gradient sketches of the policy (``<stem>_sketches.npz``)
    sketch_dim: int | None = None  # None: the exact gradient over the selected parameters
    grad_params: str | None = None  # the parameter subset (``rmtheory.hf.grads.select_params``); None: all
    rate_minibatch: int = 64       # samples per optimiser step for the Adam-geometry rate (``<stem>_rates.json``)

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["rms"] = [list(x) for x in self.rms]
        return d


# Settings added after the first release, with the value that reproduces what runs made before them did: a
# manifest without the key reads as this value.
SETTING_DEFAULTS = {"truncate_prompts": False, "teaching_rate": False, "sketch_dim": None, "grad_params": None,
                    "rate_minibatch": 64}

# The settings each kind of saved chunk depends on (besides its reward model's path): a change of any other
# setting leaves a finished chunk valid (see stale_chunks).
SAMPLE_KEYS = frozenset({"policy", "prompts_sha256", "k", "seed", "temperature", "top_p", "top_k", "max_new_tokens",
                         "batch_size", "chunk_prompts", "chat_template", "truncate_prompts", "device_type", "dtype"})
SCORE_KEYS = SAMPLE_KEYS | {"max_length"}
PAIR_KEYS = frozenset({"pairs_sha256", "k", "chunk_prompts", "batch_size", "chat_template", "max_length",
                       "device_type", "dtype"})
# chunk kind (the file name's first part) -> the settings it depends on; a step that saves a new kind of chunk
# registers it here (an unregistered kind is stale whenever any setting changes)
GRAD_KEYS = SAMPLE_KEYS | {"sketch_dim", "grad_params"}
CHUNK_KEYS = {"gen": SAMPLE_KEYS, "score": SCORE_KEYS, "pairs": PAIR_KEYS, "grads": GRAD_KEYS}


def check_options(args) -> None:
    """The numeric and path options of ``rmtheory score`` (ScoreError names the flag and the allowed range)."""
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
    check_teaching_rate_options(args)


def check_teaching_rate_options(args) -> None:
    """``--sketch-dim``/``--grad-params`` need ``--teaching-rate``; the rate's estimator is unbiased only for
    samples from the policy it differentiates, so greedy decoding, top-p < 1 and top-k are refused."""
    rate = bool(getattr(args, "teaching_rate", False))
    dim, params = getattr(args, "sketch_dim", None), getattr(args, "grad_params", None)
    if not rate:
        if dim is not None or params is not None:
            raise ScoreError("--sketch-dim and --grad-params need --teaching-rate")
        return
    if dim is not None and dim < 1:
        raise ScoreError(f"--sketch-dim must be >= 1; got {dim}")
    if getattr(args, "rate_minibatch", 64) < 1:
        raise ScoreError(f"--rate-minibatch must be >= 1; got {args.rate_minibatch}")
    if args.k < 2:
        raise ScoreError(f"--teaching-rate needs --k >= 2 (the estimator pairs samples of a prompt); got {args.k}")
    for bad, why in ((args.temperature == 0, "--temperature 0 (greedy)"), (args.top_p < 1, f"--top-p {args.top_p}"),
                     (args.top_k > 0, f"--top-k {args.top_k}")):
        if bad:
            raise ScoreError(f"--teaching-rate: {why} samples from another distribution than the policy's "
                             "softmax(logits/τ), so the rate estimate would be biased; sample with top-p 1 and top-k 0")


def named_models(args) -> list[tuple[str, str]]:
    """[(name, path)] of ``--rm`` then ``--ground-truth`` (names unique)."""
    rms = [parse_named(v, "--rm") for v in args.rm]
    gt = [parse_named(args.ground_truth, "--ground-truth")] if args.ground_truth else []
    names = [n for n, _ in rms + gt]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ScoreError(f"--rm/--ground-truth: name(s) used twice: {', '.join(dup)}")
    return rms + gt


def settings(args, device: str, dtype: str) -> Settings:
    """:class:`Settings` from the parsed command line (``device``, ``dtype`` already resolved)."""
    check_options(args)
    models = named_models(args)
    gt = models[-1][0] if args.ground_truth else None
    return Settings(policy=args.policy, rms=tuple(models), ground_truth=gt, prompts_sha256=_sha256(args.prompts),
                    pairs_sha256=_sha256(args.off_policy) if args.off_policy else None, k=args.k, seed=args.seed,
                    temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                    max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, chunk_prompts=args.chunk_prompts,
                    chat_template=not args.no_chat_template, max_length=args.max_length,
                    device_type=device.split(":")[0], dtype=dtype,
                    truncate_prompts=bool(getattr(args, "truncate_prompts", False)),
                    teaching_rate=bool(getattr(args, "teaching_rate", False)),
                    sketch_dim=getattr(args, "sketch_dim", None), grad_params=getattr(args, "grad_params", None),
                    rate_minibatch=int(getattr(args, "rate_minibatch", 64)))


def prompt_seed(seed: int, prompt_id: str) -> int:
    """The torch seed of one prompt's K samples: a hash of (seed, prompt_id), so samples do not depend on the
    chunking or on where the prompt is in the file."""
    return int.from_bytes(hashlib.sha256(f"{seed}\0{prompt_id}".encode()).digest()[:8], "little") & (2 ** 63 - 1)


# --------------------------------------------------------------------------------------------------------
# What a model reads
# --------------------------------------------------------------------------------------------------------

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
# Files
# --------------------------------------------------------------------------------------------------------

def output_paths(out: str) -> dict:
    stem = out[:-4] if out.lower().endswith(".csv") else out
    return {"rewards": out, "pairs": stem + "_pairs.csv", "samples": stem + "_samples.jsonl",
            "manifest": stem + "_score.json", "sketches": stem + "_sketches.npz", "rates": stem + "_rates.json",
            "parts": out + ".parts"}


def differences(new: dict, old: dict, keys=None) -> list[str]:
    """``"key: old → new"`` for every setting that differs (only ``keys`` when given)."""
    return [f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in io.differing_keys(old, new, keys)]


def stale_chunks(new: dict, old: dict, files) -> list[str]:
    """The chunk files (names under ``<out>.parts/``: ``gen-C.json``, ``score-NAME-C.json``,
    ``pairs-NAME-C.json``) that settings ``new`` would not reproduce, given the settings ``old`` they were
    made with: a chunk is stale when a setting it depends on (:data:`CHUNK_KEYS`) or its reward model's path
    changed; a change to anything else (say a mistyped ``--rm`` that never loaded)
    leaves it valid."""
    changed = {k for k in set(new) | set(old) if new.get(k) != old.get(k)}
    new_rm = {n: p for n, p in new.get("rms", [])}
    old_rm = {n: p for n, p in old.get("rms", [])}
    stale = []
    for f in files:
        kind, _, rest = f.removesuffix(".json").partition("-")
        name = rest.rpartition("-")[0]
        keys = CHUNK_KEYS.get(kind, changed)
        if changed & keys or (kind != "gen" and new_rm.get(name) != old_rm.get(name)):
            stale.append(f)
    return stale
