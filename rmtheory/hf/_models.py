"""``rmtheory score``'s models (torch + transformers): device and dtype, loading one model at a time
(:class:`Loaded`, which drops its references when closed), the prompts as the policy reads them (context
checks, truncation on request), sampling and scoring."""

from __future__ import annotations

import os

import numpy as np

from ._inputs import ScoreError, model_source, policy_input, prompt_seed


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


def free_memory() -> None:
    """Collect garbage and return cached CUDA memory (after the last reference to a model is gone)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Loaded:
    """One model and its tokenizer, loaded for a ``with`` block: on exit the holder drops both references and
    frees the memory, so the next model loads into an empty device (one model in memory at a time). Functions
    that use it take the holder, not the model, so no caller keeps a reference past the block."""

    def __init__(self, model, tokenizer, path: str, option: str):
        self.model, self.tokenizer, self.path, self.option = model, tokenizer, path, option

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.model = self.tokenizer = None
        free_memory()
        return False


def _hub_reachable(path: str, option: str) -> None:
    """Fail fast for a Hub name that is neither cached nor reachable (one request, no retries)."""
    import huggingface_hub
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(path)
    except HFValidationError:
        raise ScoreError(f"{option} {path}: no such directory") from None
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise ScoreError(f"{option} {path}: no such directory, and not in the Hugging Face cache (HF_HUB_OFFLINE is "
                         "set)")
    try:
        huggingface_hub.model_info(path, timeout=10)
    except huggingface_hub.errors.RepositoryNotFoundError:
        raise ScoreError(f"{option} {path}: no such directory, and no such model on the Hugging Face Hub") from None
    except Exception as e:  # no network, a proxy, a gated model: say which
        raise ScoreError(f"{option} {path}: no such directory, not in the Hugging Face cache, and the Hub did not "
                         f"answer ({type(e).__name__}: {' '.join(str(e).split())[:150]})") from None


def _from_pretrained(cls, path: str, option: str, **kw):
    """``cls.from_pretrained(path)``: a local directory as is; a Hub name from the cache if there, else after a
    one-request check that the Hub has it (transformers would otherwise retry for about a minute offline)."""
    if model_source(path, option) == "local":
        return cls.from_pretrained(path, local_files_only=True, **kw)
    try:
        return cls.from_pretrained(path, local_files_only=True, **kw)
    except OSError:
        _hub_reachable(path, option)
        return cls.from_pretrained(path, **kw)


def _causal_lm_architectures():
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())


def load(kind: str, path: str, option: str, device: str, dtype: str) -> Loaded:
    """The policy (``kind="policy"``: a causal LM with a language-modelling head) or a reward model (sequence
    classification with one output) and its tokenizer, on ``device`` in eval mode."""
    import transformers

    policy = kind == "policy"
    cls = transformers.AutoModelForCausalLM if policy else transformers.AutoModelForSequenceClassification
    try:
        tok = _from_pretrained(transformers.AutoTokenizer, path, option)
        config = _from_pretrained(transformers.AutoConfig, path, option)
        arch = list(getattr(config, "architectures", None) or [])
        if policy and arch and not set(arch) & _causal_lm_architectures():
            raise ScoreError(f"{option} {path}: a {', '.join(arch)} checkpoint, not a causal LM with a "
                             "language-modelling head (AutoModelForCausalLM)")
        model = _from_pretrained(cls, path, option, dtype=_torch_dtype(dtype))
    except (OSError, ValueError) as e:
        if isinstance(e, ScoreError):
            raise
        raise ScoreError(f"{option}: cannot load {path!r}: {' '.join(str(e).split())[:300]}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    if not policy and model.config.num_labels != 1:
        raise ScoreError(f"{option}: {path!r} has {model.config.num_labels} outputs; a reward model needs one "
                         "(num_labels=1)")
    model.to(device).eval()
    return Loaded(model, tok, path, option)


def context_length(lm: Loaded) -> int | None:
    """Positions the model can attend to: the smaller of its config's and its tokenizer's limit (None if
    neither states one)."""
    cfg = lm.model.config
    npos = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    tml = getattr(lm.tokenizer, "model_max_length", None)
    limits = [x for x in (npos, tml if tml and tml < 10 ** 7 else None) if x]
    return min(limits) if limits else None


def encode_prompts(lm: Loaded, prompts: list[dict], s) -> tuple[list[list[int]], int]:
    """Token ids the policy is conditioned on, per prompt, and how many were truncated. Every prompt must leave
    room for ``s.max_new_tokens`` in the context: one that does not is an error naming it (or, with
    ``s.truncate_prompts``, keeps its last context − max_new_tokens tokens, so the chat template's generation
    prompt stays); an empty one is an error."""
    ctx = context_length(lm)
    if ctx is not None and s.max_new_tokens >= ctx:
        raise ScoreError(f"--max-new-tokens {s.max_new_tokens} leaves no room for a prompt in the policy's context "
                         f"of {ctx:,} tokens (use at most {ctx - 1})")
    out, n_cut = [], 0
    for p in prompts:
        text, special = policy_input(lm.tokenizer, p["prompt"], s.chat_template)
        ids = lm.tokenizer(text, add_special_tokens=special)["input_ids"]
        if not ids:
            raise ScoreError(f"--prompts: prompt {p['prompt_id']} is empty for the policy (0 tokens"
                             f"{'' if s.chat_template else ' with --no-chat-template'}); give it some text")
        if ctx is not None and len(ids) + s.max_new_tokens > ctx:
            if not s.truncate_prompts:
                raise ScoreError(f"prompt {p['prompt_id']} is {len(ids):,} tokens; with --max-new-tokens "
                                 f"{s.max_new_tokens} the policy's context of {ctx:,} tokens holds at most "
                                 f"{ctx - s.max_new_tokens:,} (pass --truncate-prompts, lower --max-new-tokens, "
                                 "or shorten it)")
            ids, n_cut = ids[len(ids) - (ctx - s.max_new_tokens):], n_cut + 1
        out.append(ids)
    return out, n_cut


def generate(lm: Loaded, ids: list[int], prompt_id: str, s, device: str) -> tuple[list[str], list[list[int]]]:
    """K responses to one prompt (its token ids): one seeded ``generate`` call (split into ``batch_size`` rows
    when K is larger, drawn one after another from the same seeded stream). Returns the decoded texts and the
    sampled token ids (cut after the end-of-sequence token when the sample stopped on it: its probability is
    part of π(y|x), which ``--teaching-rate`` differentiates)."""
    import torch

    model, tokenizer = lm.model, lm.tokenizer
    inp = torch.tensor([ids], device=device)
    eos = model.generation_config.eos_token_id
    eos = tokenizer.eos_token_id if eos is None else eos
    eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
    sample = s.temperature > 0
    kw = dict(do_sample=sample, max_new_tokens=s.max_new_tokens, pad_token_id=tokenizer.pad_token_id)
    if sample:
        kw.update(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k)
    torch.manual_seed(prompt_seed(s.seed, prompt_id))
    out, out_ids = [], []
    with torch.no_grad():
        for start in range(0, s.k, s.batch_size):
            rows = min(s.batch_size, s.k - start)
            res = model.generate(input_ids=inp.expand(rows, -1), attention_mask=torch.ones_like(inp).expand(rows, -1),
                                 **kw)
            for row in res[:, len(ids):].tolist():
                cut = next((i for i, t in enumerate(row) if t in eos_ids), len(row))
                out.append(tokenizer.decode(row[:cut], skip_special_tokens=True))
                out_ids.append(row[:cut + 1] if cut < len(row) else row)
    return out, out_ids


def score_texts(rm: Loaded, texts: list[tuple[str, bool]], batch_size: int, device: str,
                max_length: int | None = None, on_batch=None) -> np.ndarray:
    """Reward of each (text, add_special_tokens) as float64: batches of similar length, padded, logits[:, 0],
    inputs truncated to ``max_length`` tokens (default: the model's limit). ``on_batch(n)`` is called after
    each batch of n texts."""
    import torch

    model, tokenizer = rm.model, rm.tokenizer
    if max_length is None:
        max_length = context_length(rm) or 10 ** 7
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
            if on_batch is not None:
                on_batch(len(idx))
    return out
