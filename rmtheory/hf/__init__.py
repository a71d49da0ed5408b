"""Hugging Face bridge (optional extra ``[hf]``: torch, transformers, tokenizers).

* :mod:`rmtheory.hf.score`: ``rmtheory score``, from a causal-LM policy and sequence-classification reward
  models to the tables ``rmtheory evaluate`` reads (the run and CLI; its inputs and settings, which need no
  torch, are :mod:`rmtheory.hf._inputs`, its models :mod:`rmtheory.hf._models`).
* :mod:`rmtheory.hf.tiny`: tiny random checkpoints to try it (``python -m rmtheory.hf.tiny DIR``).

Nothing here is imported by ``import rmtheory``: the core package stays JAX-only.
"""
