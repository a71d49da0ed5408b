"""Hugging Face TRL's RLOOTrainer on a model shaped like the `small` LM policy: updates/second on CPU.

    pip install -e ".[bench-trl]"        # torch (CPU wheel), trl==1.16.0, transformers, accelerate, datasets
    python benchmarks/trl_rloo.py [--reps 3] [--warmup 5] [--updates 40] [--mode both|default|tuned]

The baseline of the RLOO throughput comparison with TRL (compare with ``benchmarks/rloo_step.py``).
It does not import rmtheory (it runs in a torch venv without JAX), so the `small` shape is written out
below; ``--vocab/--prompt-len/--resp-len/--d-model/--layers/--heads`` override it.

Shape (rmtheory/lm/model.py and config.py, ``small``): a GPT-2 with d = 64, 2 layers, 4 heads, MLP width
4d with ReLU (ours uses ReLU), learned positional embeddings, pre-LayerNorm, an untied LM head, vocab 17,
prompt 9 tokens, response ≤ 8 tokens (n_positions = 17). The only difference: GPT-2 has biases on the
attention projections where ours has none (103,360 vs 102,848 parameters).

One "update" (as in rloo_step.py) = 32 prompts × k = 2 completions sampled (max 8 new tokens, temperature
1, KV cache), scored by a same-shape transformer reward model (GPT2ForSequenceClassification, one forward
of prompt+completion: TRL decodes the completions to text and re-tokenises them for the RM), the KL to a
frozen reference model (beta 0.05), the RLOO leave-one-out advantages, then 2 Adam steps of 32 sequences
each (1 PPO epoch, clip 0.2). In TRL terms: per_device_train_batch_size = 32 sequences per optimizer step,
gradient_accumulation_steps = 1, steps_per_generation = 2 (so generation_batch_size = 64 = 32 prompts ×
num_generations 2, each generation batch is split into 2 optimizer steps), num_iterations = 1. So one
update = 2 TRL optimizer steps (``global_step``); updates/s = (optimizer steps / 2) / seconds.

Timing: a callback stamps the wall clock at each optimizer step end; the first ``--warmup`` updates are
skipped, the next ``--updates`` are timed. Each repetition builds a fresh trainer; the median of ``--reps``
is reported. Modes:

* ``default``: TRL's own defaults for everything that is not the shape above (bf16 autocast on CPU,
  gradient checkpointing on, dropout 0.1 as in GPT-2's config, logging every 10 steps);
* ``tuned``: fp32, no gradient checkpointing, dropout off (``disable_dropout``), no logging/saving.

``--threads 1`` (torch.set_num_threads) matters on a shared 2-core VM: with torch's default 2 OpenMP
threads and other jobs on the cores, every parallel region waits for a descheduled thread and TRL runs
5-10× slower (measured: 0.57 vs 4.9 updates/s tuned at load average 6).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from _machine import cpu_model, loadavg  # benchmarks/_machine.py (this script's directory is on sys.path)




def build(a, workdir):
    """Save a randomly initialised policy, reward model and word-level tokenizer under ``workdir``."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel, PreTrainedTokenizerFast

    pad, eos = 0, 3  # rmtheory.lm.task PAD, EOS
    def name(i):
        return f"t{i:03d}"  # same width: no token name is a prefix of another (special tokens match as substrings)

    vocab = {name(i): i for i in range(a.vocab)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token=name(1)))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.decoder = decoders.WordPiece(prefix="##")  # joins word-level tokens with spaces
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token=name(pad), eos_token=name(eos),
                                  bos_token=name(1), unk_token=name(1), padding_side="left", truncation_side="left")
    cfg = GPT2Config(vocab_size=a.vocab, n_positions=a.prompt_len + a.resp_len, n_embd=a.d_model,
                     n_layer=a.layers, n_head=a.heads, n_inner=4 * a.d_model, activation_function="relu",
                     tie_word_embeddings=False, bos_token_id=1, eos_token_id=eos, pad_token_id=pad)
    torch.manual_seed(0)
    pol = GPT2LMHeadModel(cfg)
    pol.generation_config.pad_token_id = pad
    pol.generation_config.eos_token_id = eos
    pol.save_pretrained(os.path.join(workdir, "policy"))
    tok.save_pretrained(os.path.join(workdir, "policy"))
    rm = GPT2ForSequenceClassification(GPT2Config(**{**cfg.to_dict(), "num_labels": 1}))
    rm.config.pad_token_id = pad
    rm.eval()
    n_pol = sum(p.numel() for p in pol.parameters())
    return tok, rm, n_pol


def dataset(a, n_prompts):
    import numpy as np
    from datasets import Dataset

    rng = np.random.default_rng(0)
    # content tokens only (no PAD/EOS), so every prompt is exactly prompt_len tokens and no padding is needed
    ids = rng.integers(4, a.vocab, size=(n_prompts, a.prompt_len))
    return Dataset.from_dict({"prompt": [" ".join(f"t{i:03d}" for i in row) + " " for row in ids]})


def run_once(a, mode, tok, rm, workdir):
    from transformers import TrainerCallback
    from trl import RLOOConfig, RLOOTrainer

    n_updates = a.warmup + a.updates
    stamps = []

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            stamps.append(time.perf_counter())

    common = dict(output_dir=os.path.join(workdir, f"out-{mode}"), report_to="none", save_strategy="no",
                  per_device_train_batch_size=a.prompts * a.k // a.minibatches, gradient_accumulation_steps=1,
                  steps_per_generation=a.minibatches, num_generations=a.k, num_iterations=1,
                  max_completion_length=a.resp_len, beta=0.05, epsilon=0.2, learning_rate=1e-4,
                  max_steps=n_updates * a.minibatches, use_cpu=True, seed=0, temperature=1.0,
                  lr_scheduler_type="constant", dataloader_num_workers=0)
    if mode == "tuned":
        common.update(bf16=False, fp16=False, gradient_checkpointing=False, disable_dropout=True,
                      logging_steps=10**9, disable_tqdm=True)
    args = RLOOConfig(**common)
    ds = dataset(a, a.prompts * (n_updates + 2))
    tr = RLOOTrainer(model=os.path.join(workdir, "policy"), reward_funcs=rm, args=args, train_dataset=ds,
                     processing_class=tok, reward_processing_classes=tok, callbacks=[Stamp()])
    tr.train()
    steps = stamps[a.minibatches - 1 :: a.minibatches]  # one stamp per update (after its last Adam step)
    t0, t1 = steps[a.warmup - 1], steps[-1]
    return (len(steps) - a.warmup) / (t1 - t0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("both", "default", "tuned"), default="both")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=5, help="updates skipped before timing")
    ap.add_argument("--updates", type=int, default=40, help="timed updates per repetition")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--vocab", type=int, default=17)
    ap.add_argument("--prompt-len", type=int, default=9)
    ap.add_argument("--resp-len", type=int, default=8)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--prompts", type=int, default=32, help="prompts per rollout batch")
    ap.add_argument("--k", type=int, default=2, help="completions per prompt")
    ap.add_argument("--minibatches", type=int, default=2, help="Adam steps per rollout batch")
    a = ap.parse_args(argv)
    if a.warmup < 1 or a.updates < 1 or a.reps < 1:
        ap.error("--warmup, --updates and --reps must be >= 1")

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers
    import trl
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical cores); torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), transformers {transformers.__version__}, trl {trl.__version__}")
    with tempfile.TemporaryDirectory() as wd:
        tok, rm, n_pol = build(a, wd)
        print(f"policy: GPT-2 d={a.d_model}, {a.layers} layers, {a.heads} heads, vocab {a.vocab}, ReLU MLP 4d, untied "
              f"head, {n_pol:,} parameters; reward model: same shape + scalar head; {a.prompts} prompts × k={a.k}, "
              f"{a.resp_len} new tokens, {a.minibatches} Adam steps per update")
        modes = ("default", "tuned") if a.mode == "both" else (a.mode,)
        for mode in modes:
            rates = []
            for r in range(a.reps):
                la = loadavg()
                rates.append(run_once(a, mode, tok, rm, wd))
                print(f"  {mode} rep {r + 1}: {rates[-1]:.2f} updates/s (load before {la}, after {loadavg()})",
                      flush=True)
            print(f"TRL RLOOTrainer {mode}: {statistics.median(rates):.2f} updates/s (median of {a.reps}; "
                  f"{a.updates} updates timed after {a.warmup} warm-up)", flush=True)


if __name__ == "__main__":
    main()
