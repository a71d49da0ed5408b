"""The synthetic instruction-following task and its exact ground-truth reward.

**Vocabulary** (``V = 7 + n_content`` tokens; 17 with the ``small`` config's ``n_content = 10``)::

    0 PAD   1 BOS   2 SEP   3 EOS   4 COPY   5 REVERSE   6 SHIFT   7 .. 7+n_content-1  content letters

**Prompt** ``x``: an instruction token ``op ∈ {COPY, REVERSE, SHIFT}`` followed by ``m`` content letters
``a_1..a_m`` (``m_min ≤ m ≤ m_max``), written ``[PAD…PAD, BOS, op, a_1, …, a_m, SEP]`` and left-padded to
the fixed prompt length ``m_max + 3`` (so every response starts at the same position).

**Target** ``t(x)`` (length ``m``): COPY → ``a_1..a_m``; REVERSE → ``a_m..a_1``; SHIFT → each letter
replaced by the next letter (cyclically, ``a_i + 1 mod n_content``).

**Response** ``y``: up to ``L = m_max + 2`` tokens; the response is the tokens before the first EOS
(``|y|`` = index of the first EOS, or ``L`` if there is none); everything after the EOS is PAD.

**Ground truth** (exact, graded, cheap)::

    c_i = 1                                   if y_i = t_i
    c_i = 0.3 · (1 − (d(y_i, t_i) − 1)/D)     if y_i, t_i are both letters and y_i ≠ t_i
    c_i = 0                                   otherwise (special token in the response)
    r_G(x, y) = 2 · Σ_{i < min(|y|, m)} c_i / max(|y|, m) − 1   ∈ [−1, 1]

where d is the cyclic distance between letters (1 ≤ d ≤ D = ⌊n_content/2⌋): a wrong letter earns partial
credit 0.3 (neighbouring letter) down to 0.3/D (farthest letter). The sum of position-wise credits is
divided by the longer of the two lengths (so missing, extra or wrong letters all cost) and mapped to
[−1, 1]. It takes many levels (ties between different responses are rare), equals 1 iff ``y = t(x)``
exactly, and −1 iff no position holds a letter (e.g. an empty response).

**Off-policy response source** (the UltraFeedback analogue): five fixed generators of different quality
(expert / good / fair / poor / random). Generator ``g`` copies the target, substitutes each letter by a
different random letter with probability ``sub[g]``, and with probability ``edit[g]`` applies one
structural edit (drop, duplicate or swap-adjacent at a random position); the ``random`` generator emits
uniformly random letters of random length. An off-policy pair is two samples from two distinct randomly
chosen generators, relabelled chosen/rejected by ``r_G`` (pairs tied under ``r_G`` are dropped, as in
the paper's code). Its error profile (structural edits, very different quality levels) differs from the
initial policy's (which makes mostly letter substitutions at a moderate rate), as UltraFeedback differs
from an SFT model's samples.

**Difficulty and the SFT teacher** (prompt-dependent, with *systematic* errors). A prompt is **hard** iff its
first letter lies in the first ``hard_fraction`` of the alphabet (a deterministic feature the models can
see). The demonstrations come from a noisy teacher that

* applies the **wrong operation** (COPY ↔ REVERSE, SHIFT → COPY) with probability ``conf_hard`` on hard
  prompts and ``conf_easy`` on easy ones, so on hard prompts the teacher's (and the SFT policy's) most likely
  answer is wrong: being likely under the SFT policy is not being correct;
* substitutes each letter with probability ``sub[op] + sub_len · (m − m_min)`` (REVERSE and SHIFT, and longer
  prompts, are noisier), so the mean ground truth differs between prompts;
* with probability ``len_noise`` drops the last letter or appends a random one.

Everything is a pure function of explicit PRNG keys; arrays are int32 (tokens) and float32 (rewards).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

PAD, BOS, SEP, EOS = 0, 1, 2, 3
COPY, REVERSE, SHIFT = 4, 5, 6
OPS = (COPY, REVERSE, SHIFT)
FIRST_CONTENT = 7

# Off-policy generators: (name, substitution probability, structural-edit probability).
GENERATORS = (("expert", 0.03, 0.0), ("good", 0.12, 0.3), ("fair", 0.3, 0.5), ("poor", 0.55, 0.7))
N_GENERATORS = len(GENERATORS) + 1  # + the uniformly random generator


@dataclass(frozen=True)
class TaskSpec:
    n_content: int = 10
    m_min: int = 3
    m_max: int = 6

    def __post_init__(self):
        if self.n_content < 2:
            raise ValueError(f"n_content must be >= 2; got {self.n_content}")
        if not 1 <= self.m_min <= self.m_max:
            raise ValueError(f"need 1 <= m_min <= m_max; got m_min={self.m_min}, m_max={self.m_max}")

    @property
    def vocab(self) -> int:
        return FIRST_CONTENT + self.n_content

    @property
    def prompt_len(self) -> int:
        return self.m_max + 3

    @property
    def resp_len(self) -> int:
        return self.m_max + 2

    @property
    def seq_len(self) -> int:
        return self.prompt_len + self.resp_len


class Prompts(NamedTuple):
    """A set of prompts: ``tokens`` [N, prompt_len], ``target`` [N, m_max] (content tokens, −1 padded),
    ``tlen`` [N] (= m), ``op`` [N] (0 COPY, 1 REVERSE, 2 SHIFT) and ``first`` [N] (index of the first letter,
    which decides whether the prompt is hard). numpy or jax arrays; :meth:`take` selects rows."""

    tokens: np.ndarray
    target: np.ndarray
    tlen: np.ndarray
    op: np.ndarray
    first: np.ndarray

    def take(self, idx) -> "Prompts":
        return Prompts(*(np.asarray(a)[idx] for a in self))

    def repeat(self, k: int) -> "Prompts":
        return Prompts(*(np.repeat(np.asarray(a), k, axis=0) for a in self))

    @property
    def n(self) -> int:
        return int(np.asarray(self.tlen).shape[0])

    def hard(self, spec: "TaskSpec", hard_fraction: float):
        return np.asarray(self.first) < hard_cut(spec, hard_fraction)


@functools.partial(jax.jit, static_argnums=(1, 2))
def sample_prompt_parts(key, spec: TaskSpec, n: int):
    """n random (op, length, letters) triples as int32 arrays (letters beyond the length are 0)."""
    k1, k2, k3 = jax.random.split(key, 3)
    op = jax.random.randint(k1, (n,), 0, 3, dtype=jnp.int32)
    m = jax.random.randint(k2, (n,), spec.m_min, spec.m_max + 1, dtype=jnp.int32)
    letters = jax.random.randint(k3, (n, spec.m_max), 0, spec.n_content, dtype=jnp.int32)
    letters = jnp.where(jnp.arange(spec.m_max)[None] < m[:, None], letters, 0)
    return op, m, letters


def encode(spec: TaskSpec, op, m, letters):
    """Prompt tokens [N, prompt_len] (left-padded) and targets [N, m_max] (content tokens, −1 padded)."""
    P = spec.prompt_len
    pos = jnp.arange(spec.m_max)[None]
    valid = pos < m[:, None]
    content = FIRST_CONTENT + letters
    # prompt: [PAD]*(m_max-m), BOS, op, content[:m], SEP   (length m_max + 3)
    start = (spec.m_max - m)[:, None]  # index of BOS
    idx = jnp.arange(P)[None]
    rel = idx - start - 2  # position within the letters
    gathered = jnp.take_along_axis(content, jnp.clip(rel, 0, spec.m_max - 1), axis=1)
    tok = jnp.where(idx < start, PAD, 0)
    tok = jnp.where(idx == start, BOS, tok)
    tok = jnp.where(idx == start + 1, (jnp.asarray(OPS, jnp.int32)[op])[:, None], tok)
    tok = jnp.where((rel >= 0) & (rel < m[:, None]), gathered, tok)
    tok = jnp.where(idx == P - 1, SEP, tok)
    # targets
    tl = jax.vmap(lambda o, mm, lt: _apply_op(spec, o, mm, lt))(op, m, letters)
    target = jnp.where(valid, FIRST_CONTENT + tl, -1)
    return tok.astype(jnp.int32), target.astype(jnp.int32)


def make_prompts(spec: TaskSpec, op, m, letters) -> Prompts:
    tok, target = encode(spec, jnp.asarray(op), jnp.asarray(m), jnp.asarray(letters))
    return Prompts(np.asarray(tok), np.asarray(target), np.asarray(m, np.int32), np.asarray(op, np.int32),
                   np.asarray(letters, np.int32)[:, 0])


def unique_prompts(key, spec: TaskSpec, n: int) -> Prompts:
    """n distinct random prompts (rejection of duplicates; order is a deterministic function of key)."""
    over = max(2 * n, 64)
    op, m, letters = (np.asarray(a) for a in sample_prompt_parts(key, spec, over))
    rows = np.concatenate([op[:, None], m[:, None], letters], axis=1)
    _, first = np.unique(rows, axis=0, return_index=True)
    keep = np.sort(first)
    if keep.size < n:
        raise ValueError(f"cannot draw {n} distinct prompts from this TaskSpec (only {keep.size} found); "
                         "increase n_content or m_max, or ask for fewer prompts")
    keep = keep[:n]
    return make_prompts(spec, op[keep], m[keep], letters[keep])


def response_length(resp):
    """|y| = index of the first EOS along the last axis (L if none)."""
    L = resp.shape[-1]
    is_eos = resp == EOS
    return jnp.where(is_eos.any(-1), jnp.argmax(is_eos, axis=-1), L).astype(jnp.int32)


def response_mask(resp):
    """1 for the response tokens that are generated (up to and including the first EOS), else 0."""
    L = resp.shape[-1]
    return (jnp.arange(L) <= response_length(resp)[..., None]).astype(jnp.float32)


def ground_truth(target, tlen, resp, n_content: int):
    """r_G(x, y) ∈ [−1, 1] (see module docstring); broadcasts over leading axes.

    Computed exactly: every credit is an integer number of units 1/(10·D) (a match is 10·D units, a wrong letter
    at distance d is 3·(D − d + 1)), so r_G = (2·U − 10·D·n)/(10·D·n) with U the integer credit total and
    n = max(|y|, m). The fraction is reduced to lowest terms and divided once, in float32: two responses with
    the same exact r_G get the same float (a float sum of the credits can differ in its last bit, which would
    order exactly tied responses).

    Args: target [..., m_max] (−1 padded), tlen [...], resp [..., L] response tokens, n_content letters.
    """
    target, tlen, resp = jnp.asarray(target), jnp.asarray(tlen), jnp.asarray(resp)
    m_max = target.shape[-1]
    ylen = response_length(resp)
    y = resp[..., :m_max]
    pos = jnp.arange(m_max)
    inside = pos < jnp.minimum(ylen, tlen)[..., None]
    unit = credit_units(n_content)
    credit = jnp.where(y == target, unit, partial_credit_units(y, target, n_content))
    total = jnp.sum(jnp.where(inside, credit, 0), axis=-1)
    den = unit * jnp.maximum(ylen, tlen).astype(jnp.int32)
    num = 2 * total - den
    g = jnp.maximum(jnp.gcd(num, den), 1)
    return ((num // g).astype(jnp.float32) / (den // g).astype(jnp.float32)).astype(jnp.float32)


def credit_units(n_content: int) -> int:
    """Credit units per matching letter: 10·D, D = ⌊n_content/2⌋ (one unit is 1/(10·D))."""
    return 10 * (n_content // 2)


def partial_credit_units(y, t, n_content: int):
    """Integer credit of a wrong letter in units 1/(10·D): 3·(D − d + 1), i.e. 0.3·(1 − (d − 1)/D) exactly,
    d the cyclic letter distance, D = ⌊n_content/2⌋ (0 where either token is not a letter or d = 0)."""
    n = n_content
    D = n // 2
    a, b = y - FIRST_CONTENT, t - FIRST_CONTENT
    diff = jnp.abs(a - b) % n
    d = jnp.minimum(diff, n - diff)
    ok = (a >= 0) & (b >= 0) & (d >= 1)
    return jnp.where(ok, 3 * (D - d + 1), 0).astype(jnp.int32)


def _finish(spec: TaskSpec, content, length):
    """[L] response from a content buffer [L] and its length: content, EOS, PAD…"""
    L = spec.resp_len
    idx = jnp.arange(L)
    return jnp.where(idx < length, content, jnp.where(idx == length, EOS, PAD)).astype(jnp.int32)


def _substitute(key, spec, seq, p):
    k1, k2 = jax.random.split(key)
    flip = jax.random.bernoulli(k1, p, seq.shape)
    delta = jax.random.randint(k2, seq.shape, 1, spec.n_content, dtype=jnp.int32)
    new = FIRST_CONTENT + (seq - FIRST_CONTENT + delta) % spec.n_content
    return jnp.where(flip & (seq >= FIRST_CONTENT), new, seq)


def _edit(key, spec, seq, length, p_edit):
    """One structural edit (drop / duplicate / swap adjacent) with probability p_edit."""
    L = spec.resp_len
    k1, k2, k3 = jax.random.split(key, 3)
    do = jax.random.bernoulli(k1, p_edit)
    kind = jax.random.randint(k2, (), 0, 3)
    j = jax.random.randint(k3, (), 0, jnp.maximum(length, 1))
    idx = jnp.arange(L)
    drop = seq[jnp.clip(idx + (idx >= j), 0, L - 1)]
    dup = seq[jnp.clip(idx - (idx > j), 0, L - 1)]
    jj = jnp.minimum(j + 1, length - 1)
    swp = seq.at[j].set(seq[jj]).at[jj].set(seq[j])
    out = jnp.select([kind == 0, kind == 1], [drop, dup], swp)
    new_len = jnp.where(kind == 0, jnp.maximum(length - 1, 1),
                        jnp.where(kind == 1, jnp.minimum(length + 1, L - 1), length))
    return jnp.where(do, out, seq), jnp.where(do, new_len, length)


def _padded_target(spec, target):
    L = spec.resp_len
    return jnp.concatenate([target, jnp.full((L - target.shape[-1],), -1, jnp.int32)])


def generate_offpolicy(key, spec: TaskSpec, target, tlen, g):
    """One response of off-policy generator ``g`` (0..N_GENERATORS-1) for one prompt."""
    L = spec.resp_len
    kr, ks, ke, kl = jax.random.split(key, 4)
    subs = jnp.asarray([s for _, s, _ in GENERATORS], jnp.float32)
    edits = jnp.asarray([e for _, _, e in GENERATORS], jnp.float32)
    gi = jnp.minimum(g, len(GENERATORS) - 1)
    seq = jnp.where(jnp.arange(L) < tlen, _padded_target(spec, target), FIRST_CONTENT)
    seq = _substitute(ks, spec, seq, subs[gi])
    seq, length = _edit(ke, spec, seq, tlen, edits[gi])
    rnd = FIRST_CONTENT + jax.random.randint(kr, (L,), 0, spec.n_content, dtype=jnp.int32)
    rlen = jax.random.randint(kl, (), 1, L, dtype=jnp.int32)
    is_rand = g == len(GENERATORS)
    return _finish(spec, jnp.where(is_rand, rnd, seq), jnp.where(is_rand, rlen, length))


@functools.partial(jax.jit, static_argnums=1)
def offpolicy_pairs(key, spec: TaskSpec, target, tlen):
    """Off-policy chosen/rejected pairs for N prompts: (chosen [N, L], rejected [N, L], tied [N] bool)."""
    n = target.shape[0]
    kg, k1, k2 = jax.random.split(key, 3)
    g1 = jax.random.randint(kg, (n,), 0, N_GENERATORS)
    g2 = (g1 + jax.random.randint(jax.random.fold_in(kg, 1), (n,), 1, N_GENERATORS)) % N_GENERATORS
    gen = jax.vmap(lambda k, t, m, g: generate_offpolicy(k, spec, t, m, g))
    a = gen(jax.random.split(k1, n), target, tlen, g1)
    b = gen(jax.random.split(k2, n), target, tlen, g2)
    return order_pair(a, b, target, tlen, spec.n_content)


def order_pair(a, b, target, tlen, n_content: int):
    """Relabel two responses per prompt by r_G: (chosen, rejected, tied)."""
    ra, rb = ground_truth(target, tlen, a, n_content), ground_truth(target, tlen, b, n_content)
    a_first = (ra >= rb)[:, None]
    return jnp.where(a_first, a, b), jnp.where(a_first, b, a), ra == rb


@dataclass(frozen=True)
class Teacher:
    """The SFT teacher's error model (see the module docstring)."""

    conf_hard: float = 0.8
    conf_easy: float = 0.05
    hard_fraction: float = 0.7
    sub: tuple = (0.08, 0.15, 0.2)  # per op: COPY, REVERSE, SHIFT
    sub_len: float = 0.03
    len_noise: float = 0.1

    def __post_init__(self):
        for name in ("conf_hard", "conf_easy", "hard_fraction", "sub_len", "len_noise"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"teacher {name} must be in [0, 1]; got {v}")
        if len(self.sub) != 3 or not all(0 <= v <= 1 for v in self.sub):
            raise ValueError(f"teacher sub must be 3 probabilities (COPY, REVERSE, SHIFT); got {self.sub}")


def hard_cut(spec: TaskSpec, hard_fraction: float) -> int:
    """Letters with index < hard_cut make a prompt hard (as its first letter)."""
    return int(round(hard_fraction * spec.n_content))


CONFUSED_OP = (1, 0, 0)  # COPY → REVERSE, REVERSE → COPY, SHIFT → COPY (op indices)


def _apply_op(spec: TaskSpec, op, m, letters):
    """Target letter indices [m_max] of op ∈ {0, 1, 2} on letters [m_max] of length m (0 beyond m)."""
    pos = jnp.arange(spec.m_max)
    rev = letters[jnp.clip(m - 1 - pos, 0, spec.m_max - 1)]
    shifted = (letters + 1) % spec.n_content
    out = jnp.where(op == 0, letters, jnp.where(op == 1, rev, shifted))
    return jnp.where(pos < m, out, 0)


def teacher_demos(key, spec: TaskSpec, op, m, letters, teacher: Teacher):
    """Noisy-teacher demonstrations [N, L] for prompts given by parts (op [N], m [N], letters [N, m_max])."""
    L = spec.resp_len
    cut = hard_cut(spec, teacher.hard_fraction)
    subs = jnp.asarray(teacher.sub, jnp.float32)

    def one(k, o, mm, lt):
        kc, ks, kl, kk, kr = jax.random.split(k, 5)
        hard = lt[0] < cut
        p_conf = jnp.where(hard, teacher.conf_hard, teacher.conf_easy)
        o_used = jnp.where(jax.random.bernoulli(kc, p_conf), jnp.asarray(CONFUSED_OP, jnp.int32)[o], o)
        tl = FIRST_CONTENT + _apply_op(spec, o_used, mm, lt)
        seq = jnp.where(jnp.arange(L) < mm, _padded_target(spec, tl), FIRST_CONTENT)
        p_sub = jnp.clip(subs[o] + teacher.sub_len * (mm - spec.m_min), 0.0, 1.0)
        seq = _substitute(ks, spec, seq, p_sub)
        do = jax.random.bernoulli(kl, teacher.len_noise)
        longer = jax.random.bernoulli(kk, 0.5)
        extra = FIRST_CONTENT + jax.random.randint(kr, (), 0, spec.n_content, dtype=jnp.int32)
        seq = jnp.where(do & longer & (jnp.arange(L) == mm), extra, seq)
        length = jnp.where(do, jnp.where(longer, mm + 1, jnp.maximum(mm - 1, 1)), mm)
        return _finish(spec, seq, length)

    return jax.vmap(one)(jax.random.split(key, op.shape[0]), op, m, letters)
