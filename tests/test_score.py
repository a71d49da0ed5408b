"""``rmtheory score`` on tiny random Hugging Face checkpoints built here (no download): the tables'
shape and ids, determinism under a seed, scores equal to a direct forward pass of each reward model,
resume after an interruption, and that ``rmtheory evaluate`` reads the output.

Needs the ``[hf]`` extra (torch, transformers); skipped without it. Marked ``hf``.
"""

import csv
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rmtheory.cli import main as cli  # noqa: E402
from rmtheory.evaluate import evaluate  # noqa: E402
from rmtheory.hf import score as S  # noqa: E402
from rmtheory.hf.tiny import PROMPTS, make_tiny_models  # noqa: E402

pytestmark = pytest.mark.hf
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
K = 3
NAMES = ["helpful", "concise", "gold"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_tiny_models(str(tmp_path_factory.mktemp("tiny")), seed=0)


def _argv(m, out, *extra, k=K, seed=0):
    return ["score", "--policy", m["policy"], "--rm", f"helpful={m['rm_a']}", "--rm", f"concise={m['rm_b']}",
            "--ground-truth", f"gold={m['gold']}", "--prompts", m["prompts"], "--off-policy", m["pairs"],
            "--k", str(k), "--seed", str(seed), "--max-new-tokens", "8", "--chunk-prompts", "2", "--batch-size", "4",
            "--device", "cpu", "--no-progress", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def run0(models, tmp_path_factory):
    out = tmp_path_factory.mktemp("run0") / "rewards.csv"
    assert cli(_argv(models, out)) == 0
    return S.output_paths(str(out))


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def test_tables_shape_and_ids(run0):
    rows = _rows(run0["rewards"])
    assert rows[0] == ["prompt_id", "sample_id"] + NAMES
    body = rows[1:]
    assert len(body) == len(PROMPTS) * K
    assert [r[0] for r in body] == [f"p{i}" for i in range(len(PROMPTS)) for _ in range(K)]
    assert [r[1] for r in body] == [str(j) for _ in PROMPTS for j in range(K)]
    vals = np.array([[float(x) for x in r[2:]] for r in body])
    assert np.all(np.isfinite(vals)) and np.all(vals.std(0) > 0)
    pairs = _rows(run0["pairs"])
    assert pairs[0] == ["prompt_id"] + [f"{n}.{s}" for n in NAMES for s in ("chosen", "rejected")]
    assert [r[0] for r in pairs[1:]] == ["p0", "p1", "p3", "extra"]
    with open(run0["samples"]) as f:
        samples = [json.loads(x) for x in f]
    assert [(s["prompt_id"], s["sample_id"]) for s in samples] == [(r[0], int(r[1])) for r in body]
    manifest = json.load(open(run0["manifest"]))
    assert manifest["complete"] and manifest["settings"]["k"] == K
    assert not os.path.exists(run0["parts"])  # the chunk files go once the tables are written


def test_same_seed_same_files_other_seed_other_samples(models, run0, tmp_path):
    again = tmp_path / "again.csv"
    assert cli(_argv(models, again)) == 0
    p = S.output_paths(str(again))
    assert _read(p["rewards"]) == _read(run0["rewards"])
    assert _read(p["pairs"]) == _read(run0["pairs"])
    assert _read(p["samples"]) == _read(run0["samples"])
    other = tmp_path / "other.csv"
    assert cli(_argv(models, other, seed=1)) == 0
    assert _read(S.output_paths(str(other))["samples"]) != _read(run0["samples"])


def test_scores_equal_a_direct_forward_pass(models, run0):
    rows = _rows(run0["rewards"])[1:]
    with open(run0["samples"]) as f:
        responses = [json.loads(x)["response"] for x in f]
    prompts = {f"p{i}": p for i, p in enumerate(PROMPTS)}

    def direct(path, text, special):
        tok = transformers.AutoTokenizer.from_pretrained(path)
        model = transformers.AutoModelForSequenceClassification.from_pretrained(path).eval()
        with torch.no_grad():
            return float(model(**tok(text, return_tensors="pt", add_special_tokens=special)).logits[0, 0])

    checked = 0
    for i in (0, 4, 11, len(rows) - 1):
        pid, prompt, resp = rows[i][0], prompts[rows[i][0]], responses[i]
        # rm_a (policy's tokenizer, no template): prompt, a space, the response
        text_a = prompt + " " + resp if resp else prompt
        # rm_b: its own chat template (user/assistant turns)
        text_b = f"user : {prompt} | assistant : {resp} | "
        for col, path, text, special in ((2, models["rm_a"], text_a, True), (3, models["rm_b"], text_b, False),
                                         (4, models["gold"], text_a, True)):
            assert float(rows[i][col]) == pytest.approx(direct(path, text, special), rel=1e-5, abs=1e-5), (pid, col)
            checked += 1
    pair = _rows(run0["pairs"])[1]  # p0: chosen "the cat sat on the mat"
    want = direct(models["rm_b"], "user : tell me about the cat | assistant : the cat sat on the mat | ", False)
    assert float(pair[3]) == pytest.approx(want, rel=1e-5, abs=1e-5)
    assert checked == 12


def test_resume_after_interruption_gives_the_same_files(models, run0, tmp_path, monkeypatch):
    out = tmp_path / "resumed.csv"
    real_generate, real_score = S.generate, S.score_texts
    calls = {"gen": 0, "score": 0}

    def dying_generate(*a, **kw):
        calls["gen"] += 1
        if calls["gen"] == 4:  # chunk 0 (prompts 0, 1) saved, killed in chunk 1
            raise KeyboardInterrupt
        return real_generate(*a, **kw)

    monkeypatch.setattr(S, "generate", dying_generate)
    with pytest.raises(KeyboardInterrupt):
        cli(_argv(models, out))
    parts = S.output_paths(str(out))["parts"]
    assert sorted(f for f in os.listdir(parts) if f.startswith("gen-")) == ["gen-00000.json"]
    assert not os.path.exists(out)

    def counting_generate(*a, **kw):
        calls["gen"] += 1
        return real_generate(*a, **kw)

    def dying_score(*a, **kw):  # second interruption, while the second reward model scores
        calls["score"] += 1
        if calls["score"] == 6:
            raise KeyboardInterrupt
        return real_score(*a, **kw)

    calls["gen"] = 0
    monkeypatch.setattr(S, "generate", counting_generate)
    monkeypatch.setattr(S, "score_texts", dying_score)
    with pytest.raises(KeyboardInterrupt):
        cli(_argv(models, out))
    assert calls["gen"] == len(PROMPTS) - 2  # the saved chunk is not sampled again
    monkeypatch.setattr(S, "score_texts", real_score)
    calls["gen"] = 0
    assert cli(_argv(models, out)) == 0
    assert calls["gen"] == 0
    p = S.output_paths(str(out))
    for key in ("rewards", "pairs", "samples"):
        assert _read(p[key]) == _read(run0[key]), key
    assert cli(_argv(models, out)) == 0  # complete: nothing to do
    assert calls["gen"] == 0


def test_evaluate_reads_the_output(models, run0, capsys, tmp_path):
    report = evaluate(run0["rewards"], off_policy=run0["pairs"], ground_truth="gold", bootstrap=50, seed=0)
    d = report.to_dict()
    text = json.dumps(d)
    for n in NAMES:
        assert n in text
    assert report.format_table().count("\n") > 5
    # --then-evaluate prints the report card (the run is complete, so nothing is recomputed)
    out = tmp_path / "rewards.csv"
    for f in ("rewards", "pairs", "samples", "manifest"):
        dst = S.output_paths(str(out))[f]
        with open(dst, "wb") as g:
            g.write(_read(run0[f]))
    assert cli(_argv(models, out, "--then-evaluate")) == 0
    printed = capsys.readouterr().out
    assert "Reward-model report card" in printed and "gold (GT)" in printed and "concise" in printed


def test_other_settings_on_a_finished_out_are_refused(models, run0, capsys):
    assert cli(_argv(models, run0["rewards"], k=2)) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "k: 3 → 2" in err and "--overwrite" in err


def test_a_foreign_out_file_is_not_overwritten(models, tmp_path, capsys):
    out = tmp_path / "mine.csv"
    out.write_text("prompt_id,sample_id,x\np0,0,1\n")
    assert cli(_argv(models, out)) == 2
    assert "--out" in capsys.readouterr().err and out.read_text() == "prompt_id,sample_id,x\np0,0,1\n"


@pytest.mark.parametrize("change, message", [
    (("--rm", "noequals"), "--rm: expected NAME=PATH"),
    (("--rm", "a.b=x"), "--rm: invalid name 'a.b'"),
    (("--top-p", "0"), "--top-p must lie in (0, 1]"),
    (("--k", "0"), "--k must be >= 1"),
    (("--device", "nonsense"), "--device"),
])
def test_bad_arguments_are_named(models, tmp_path, capsys, change, message):
    assert cli(_argv(models, tmp_path / "x.csv", *change)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_bad_prompts_file_names_the_line(models, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": 3}\n')
    argv = _argv(models, tmp_path / "x.csv")
    argv[argv.index("--prompts") + 1] = str(bad)
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert "--prompts" in err and "line 2" in err and "'prompt' must be a string" in err


def test_pairs_without_prompt_id_take_the_prompts_id(models, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": PROMPTS[2], "chosen": "a", "rejected": "b"}) + "\n")
    prompts = S.read_prompts(models["prompts"])
    assert S.read_pairs(str(pairs), prompts)[0]["prompt_id"] == "p2"
    pairs.write_text(json.dumps({"prompt": "not a prompt", "chosen": "a", "rejected": "b"}) + "\n")
    with pytest.raises(S.ScoreError, match="--off-policy: .* line 1: no prompt_id"):
        S.read_pairs(str(pairs), prompts)


def test_readme_commands_run_as_written(tmp_path):
    """The README section "Evaluate your own reward models": its bash block runs in an empty directory (the
    install line is skipped: the extra is installed here)."""
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    section = readme.split("## Evaluate your own reward models", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    cmds = [ln.split("  #")[0].strip() for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
    cmds = [c for c in cmds if "pip install" not in c]
    assert len(cmds) == 3 and cmds[1].startswith("rmtheory score") and cmds[2].startswith("rmtheory evaluate")
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    for c in cmds:
        c = re.sub(r"^python ", sys.executable + " ", c)
        p = subprocess.run(c, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, (c, p.stderr[-2000:])
    assert "Reward-model report card" in p.stdout
