"""``rmtheory score``'s inputs without torch (:mod:`rmtheory.hf._inputs`): the prompts/pairs files, the
``NAME=PATH`` options, local paths against Hub names, the option ranges and which saved chunks a change of
settings makes stale. Runs in CI (torch and transformers are hidden here even when installed)."""

import argparse
import json
import os
import re
import sys

import pytest


@pytest.fixture(autouse=True)
def no_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)          # import torch raises ImportError
    monkeypatch.setitem(sys.modules, "transformers", None)


from rmtheory.hf import _inputs as I  # noqa: E402


def _args(**kw):
    d = dict(policy="p", rm=["a=b"], ground_truth=None, prompts=None, off_policy=None, k=2, seed=0, temperature=1.0,
             top_p=1.0, top_k=0, max_new_tokens=8, batch_size=4, chunk_prompts=2, max_length=None,
             no_chat_template=False, truncate_prompts=False, out="o.csv")
    d.update(kw)
    return argparse.Namespace(**d)


def test_a_file_that_is_not_utf8_names_the_file_line_and_byte(tmp_path):
    bad = tmp_path / "prompts.jsonl"
    bad.write_bytes(b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n')
    with pytest.raises(I.ScoreError) as e:
        I.read_prompts(str(bad))
    msg = str(e.value)
    assert msg.startswith("--prompts: ") and str(bad) in msg and "line 2" in msg and "0xe9" in msg
    assert "UTF-8" in msg and len(msg.splitlines()) == 1


def test_a_leading_bom_is_ignored(tmp_path):
    f = tmp_path / "prompts.jsonl"
    f.write_bytes(b'\xef\xbb\xbf{"prompt_id": "a", "prompt": "x"}\n')
    assert I.read_prompts(str(f)) == [{"prompt_id": "a", "prompt": "x"}]


def test_bad_prompts_file_names_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": 3}\n')
    with pytest.raises(I.ScoreError, match=r"--prompts: .* line 2: field 'prompt' must be a string"):
        I.read_prompts(str(bad))
    bad.write_text('{"prompt_id": "a", "prompt": "x"}\n{"prompt_id": "a", "prompt": "y"}\n')
    with pytest.raises(I.ScoreError, match="line 2: duplicated prompt_id 'a'"):
        I.read_prompts(str(bad))
    with pytest.raises(I.ScoreError, match="--prompts: no such file"):
        I.read_prompts(str(tmp_path / "missing.jsonl"))


def test_pairs_without_prompt_id_take_the_prompts_id(tmp_path):
    prompts = [{"prompt_id": "p0", "prompt": "a"}, {"prompt_id": "p2", "prompt": "b"}]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "b", "chosen": "x", "rejected": "y"}) + "\n")
    assert I.read_pairs(str(pairs), prompts)[0]["prompt_id"] == "p2"
    pairs.write_text(json.dumps({"prompt": "not a prompt", "chosen": "a", "rejected": "b"}) + "\n")
    with pytest.raises(I.ScoreError, match="--off-policy: .* line 1: no prompt_id"):
        I.read_pairs(str(pairs), prompts)


@pytest.mark.parametrize("value, message", [("noequals", "--rm: expected NAME=PATH"),
                                            ("a.b=x", "--rm: invalid name 'a.b'"),
                                            ("prompt_id=x", "invalid name 'prompt_id'")])
def test_named_options(value, message):
    with pytest.raises(I.ScoreError, match=message):
        I.parse_named(value, "--rm")


@pytest.mark.parametrize("change, message", [
    (dict(top_p=0.0), "--top-p must lie in (0, 1]"), (dict(k=0), "--k must be >= 1"),
    (dict(max_new_tokens=0), "--max-new-tokens must be >= 1"), (dict(max_length=1), "--max-length must be >= 2"),
    (dict(temperature=-1.0), "--temperature must be >= 0"), (dict(out="o.txt"), "--out must be a .csv path"),
    (dict(rm=["a=x", "a=y"]), "name(s) used twice: a"),
])
def test_option_ranges_are_named(change, message, tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "x"}\n')
    with pytest.raises(I.ScoreError) as e:
        I.settings(_args(prompts=str(f), **change), "cpu", "float32")
    assert message in str(e.value)


def test_settings_round_trip(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "x"}\n')
    s = I.settings(_args(prompts=str(f), ground_truth="gold=g", truncate_prompts=True), "cuda:1", "bfloat16")
    d = s.to_dict()
    assert d["rms"] == [["a", "b"], ["gold", "g"]] and d["ground_truth"] == "gold"
    assert d["device_type"] == "cuda" and d["truncate_prompts"] is True and json.loads(json.dumps(d)) == d


def test_a_mistyped_local_path_says_no_such_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.mkdir("demo")
    (tmp_path / "demo" / "config.json").write_text("{}")
    with pytest.raises(I.ScoreError) as e:
        I.model_source("demo/polcy", "--policy")
    assert str(e.value) == "--policy demo/polcy: no such directory"
    for path in ("./polcy", "/no/such/dir", "~/x", "a/b/c", "a\\b"):
        with pytest.raises(I.ScoreError, match="no such directory"):
            I.model_source(path, "--rm helpful")
    with pytest.raises(I.ScoreError, match="not a directory"):
        I.model_source("demo/config.json", "--policy")
    assert I.model_source("demo", "--policy") == "local"
    # a Hub name is tried only when no local path of that name exists
    assert I.model_source("gpt2", "--policy") == "hub"
    assert I.model_source("openai-community/gpt2", "--policy") == "hub"
    os.makedirs("gpt2")
    assert I.model_source("gpt2", "--policy") == "local"


def test_stale_chunks_are_only_those_the_new_settings_would_change():
    old = {"policy": "p", "rms": [["a", "pa"], ["b", "pb_typo"]], "k": 3, "max_length": None, "pairs_sha256": "x"}
    files = ["gen-00000.json", "gen-00001.json", "score-a-00000.json", "pairs-a-00000.json", "score-my-rm-00000.json"]
    # the mistyped RM "b" never produced a chunk: fixing its path keeps every finished chunk
    fixed = dict(old, rms=[["a", "pa"], ["b", "pb"]])
    assert I.stale_chunks(fixed, old, files) == []
    # a setting of the samples invalidates everything made from them
    assert I.stale_chunks(dict(old, k=2), old, files) == files
    # the reward models' truncation invalidates the scores, not the samples
    assert I.stale_chunks(dict(old, max_length=64), old, files) == files[2:]
    # another path for "a" invalidates a's chunks only; a name with '-' in it is parsed whole
    assert I.stale_chunks(dict(old, rms=[["a", "pa2"], ["b", "pb"]]), old, files) == files[2:4]
    old2 = dict(old, rms=[["my-rm", "x"]])
    assert I.stale_chunks(dict(old2, rms=[["my-rm", "y"]]), old2, files) == ["score-my-rm-00000.json"]
    assert I.stale_chunks(dict(old, pairs_sha256="y"), old, files) == ["pairs-a-00000.json"]


def test_output_paths():
    p = I.output_paths("runs/rewards.csv")
    assert p == {"rewards": "runs/rewards.csv", "pairs": "runs/rewards_pairs.csv",
                 "samples": "runs/rewards_samples.jsonl", "manifest": "runs/rewards_score.json",
                 "sketches": "runs/rewards_sketches.npz", "rates": "runs/rewards_rates.json",
                 "parts": "runs/rewards.csv.parts"}


@pytest.mark.parametrize("kw, msg", [
    (dict(sketch_dim=8), "--sketch-dim and --grad-params need --teaching-rate"),
    (dict(grad_params="last:1"), "need --teaching-rate"),
    (dict(teaching_rate=True, k=1), "--teaching-rate needs --k >= 2"),
    (dict(teaching_rate=True, top_k=5), "--top-k 5"),
    (dict(teaching_rate=True, top_p=0.5), "--top-p 0.5"),
    (dict(teaching_rate=True, temperature=0.0), "greedy"),
    (dict(teaching_rate=True, sketch_dim=0), "--sketch-dim must be >= 1"),
])
def test_teaching_rate_options(kw, msg):
    with pytest.raises(I.ScoreError, match=re.escape(msg)):
        I.check_options(_args(**kw))
    I.check_options(_args(teaching_rate=True, sketch_dim=16, grad_params="last:1", temperature=0.7))
