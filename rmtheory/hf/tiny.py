"""Tiny random Hugging Face checkpoints to try ``rmtheory score`` with no download (tests and docs/score.md).

``python -m rmtheory.hf.tiny DIR`` writes into DIR:

* ``policy/``: a 2-layer GPT-2-style causal LM (random weights) with a word-level tokenizer that has a chat
  template;
* ``rm_a/``: a GPT-2-style sequence-classification reward model with the policy's tokenizer and no template;
* ``rm_b/``: a second one with its *own* tokenizer (different vocabulary order) and its own chat template;
* ``gold/``: a third one, to play the ground-truth reward;
* ``prompts.jsonl`` (6 prompts) and ``pairs.jsonl`` (4 off-policy chosen/rejected pairs, each on one of the
  prompts, so ``rmtheory evaluate`` reads them without a warning).

Everything is built from configs with seeded random weights (``--seed``), and the tokenizers with the
``tokenizers`` library, so the same seed gives the same files. Needs the ``[hf]`` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

WORDS = ("the a cat dog sat ran on under mat log red blue big small and then is was very not good bad "
         "write tell me about story short long please why how what it they we you").split()
SPECIAL = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
ROLES = ["user", "assistant", ":", "|"]
POLICY_TEMPLATE = ("{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} | {% endfor %}"
                   "{% if add_generation_prompt %}assistant :{% endif %}")
RM_B_TEMPLATE = "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} | {% endfor %}"
PROMPTS = ["tell me about the cat", "write a short story", "why is the dog red", "how big is the mat",
           "what sat on the log", "please tell me a long story about a blue dog"]
PAIRS = [("p0", "tell me about the cat", "the cat sat on the mat", "dog dog dog"),
         ("p1", "write a short story", "a small dog ran and then sat", "not good"),
         ("p3", "how big is the mat", "the mat is very big", "it was a red log"),
         ("p4", "what sat on the log", "the cat sat on the log", "bad")]


def _tokenizer(vocab_words, template):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(vocab_words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]",
                                   eos_token="[EOS]", model_max_length=128)
    if template is not None:
        fast.chat_template = template
    return fast


def make_tiny_models(out_dir: str, seed: int = 0) -> dict:
    """Write the tiny checkpoints and inputs (see the module docstring) into ``out_dir``; returns their paths."""
    import torch
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel
    from transformers.utils import logging as tlog

    tlog.disable_progress_bar()  # quiet: no "Writing model shards" bars for four tiny models
    tlog.set_verbosity_error()
    os.makedirs(out_dir, exist_ok=True)
    words = SPECIAL + ROLES + WORDS
    tok_policy = _tokenizer(words, POLICY_TEMPLATE)
    tok_plain = _tokenizer(words, None)
    tok_b = _tokenizer(SPECIAL + list(reversed(ROLES + WORDS)), RM_B_TEMPLATE)

    def config(tok, **kw):
        return GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=32, n_layer=2, n_head=2, n_inner=64,
                          bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                          pad_token_id=tok.pad_token_id, **kw)

    paths = {}
    for i, (name, cls, tok, kw) in enumerate((("policy", GPT2LMHeadModel, tok_policy, {}),
                                              ("rm_a", GPT2ForSequenceClassification, tok_plain, {"num_labels": 1}),
                                              ("rm_b", GPT2ForSequenceClassification, tok_b, {"num_labels": 1}),
                                              ("gold", GPT2ForSequenceClassification, tok_plain, {"num_labels": 1}))):
        torch.manual_seed(seed * 1000 + i)
        model = cls(config(tok, **kw))
        if name != "policy":  # a reward head with a visible spread of scores
            with torch.no_grad():
                model.score.weight.normal_(0.0, 1.0)
        path = os.path.join(out_dir, name)
        model.save_pretrained(path)
        tok.save_pretrained(path)
        paths[name] = path
    with open(os.path.join(out_dir, "prompts.jsonl"), "w", encoding="utf-8") as f:
        for i, p in enumerate(PROMPTS):
            f.write(json.dumps({"prompt_id": f"p{i}", "prompt": p}) + "\n")
    with open(os.path.join(out_dir, "pairs.jsonl"), "w", encoding="utf-8") as f:
        for pid, p, c, r in PAIRS:
            f.write(json.dumps({"prompt_id": pid, "prompt": p, "chosen": c, "rejected": r}) + "\n")
    paths["prompts"] = os.path.join(out_dir, "prompts.jsonl")
    paths["pairs"] = os.path.join(out_dir, "pairs.jsonl")
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rmtheory.hf.tiny", description=__doc__.splitlines()[0])
    p.add_argument("out_dir", metavar="DIR")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    args = p.parse_args(argv)
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        print('python -m rmtheory.hf.tiny: error: needs the [hf] extra: python -m pip install ".[hf]"', file=sys.stderr)
        return 2
    for k, v in make_tiny_models(args.out_dir, args.seed).items():
        print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
