"""Atomic artifact writing (tmp file + ``os.replace``) and loading."""

from __future__ import annotations

import csv
import json
import os

import equinox as eqx
import numpy as np

from .._io import atomic


def save_json(path, obj):
    def w(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True, default=_default)
            f.write("\n")
    atomic(w, path)


def _default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(type(o))


def load_json(path):
    with open(path) as f:
        return json.load(f)


def save_npz(path, **arrays):
    def w(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic(w, path)


def load_npz(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def save_tree(path, tree):
    atomic(lambda tmp: eqx.tree_serialise_leaves(tmp, tree), path)


def load_tree(path, like):
    return eqx.tree_deserialise_leaves(path, like)


def save_csv(path, header, rows):
    def w(tmp):
        with open(tmp, "w", newline="") as f:
            wr = csv.writer(f)
            wr.writerow(header)
            wr.writerows(rows)
    atomic(w, path)


def save_text(path, text):
    def w(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    atomic(w, path)
