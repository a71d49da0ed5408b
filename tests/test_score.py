"""``rmtheory score`` on tiny random Hugging Face checkpoints built here (no download): the tables'
shape and ids, determinism under a seed, scores equal to a direct forward pass of each reward model,
resume after an interruption (Ctrl-C: exit status 130), one model in memory at a time, that ``rmtheory
evaluate`` reads the output without a warning, and hostile inputs that need the models (prompts longer than
the context, empty prompts, models that do not load or are not what the option needs). The input tests that
need no torch are ``tests/test_score_inputs.py``.

Needs the ``[hf]`` extra (torch, transformers); skipped without it. Marked ``hf``.
"""

import csv
import json
import os
import re
import subprocess
import sys

import _commands
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rmtheory.cli import main as cli  # noqa: E402
from rmtheory.evaluate import evaluate  # noqa: E402
from rmtheory.hf import _models as M  # noqa: E402
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
    assert [r[0] for r in pairs[1:]] == ["p0", "p1", "p3", "p4"]
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
    real_generate, real_score = M.generate, M.score_texts
    calls = {"gen": 0, "score": 0}

    def dying_generate(*a, **kw):
        calls["gen"] += 1
        if calls["gen"] == 4:  # chunk 0 (prompts 0, 1) saved, killed in chunk 1
            raise KeyboardInterrupt
        return real_generate(*a, **kw)

    monkeypatch.setattr(M, "generate", dying_generate)
    assert cli(_argv(models, out)) == 130
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
    monkeypatch.setattr(M, "generate", counting_generate)
    monkeypatch.setattr(M, "score_texts", dying_score)
    assert cli(_argv(models, out)) == 130
    assert calls["gen"] == len(PROMPTS) - 2  # the saved chunk is not sampled again
    monkeypatch.setattr(M, "score_texts", real_score)
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


def test_an_unknown_device_is_named(models, tmp_path, capsys):
    assert cli(_argv(models, tmp_path / "x.csv", "--device", "nonsense")) == 2
    err = capsys.readouterr().err.strip()
    assert "--device" in err and len(err.splitlines()) == 1


def test_guide_commands_run_as_written(tmp_path):
    """The guide docs/score.md: its first bash block runs in an empty directory (the install line is skipped: the
    extra is installed here)."""
    with open(os.path.join(ROOT, "docs", "score.md")) as f:
        section = f.read()
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    cmds = [ln.split("  #")[0].strip() for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
    cmds = [c for c in cmds if "pip install" not in c]
    assert len(cmds) == 3 and cmds[1].startswith("rmtheory score") and cmds[2].startswith("rmtheory evaluate")
    for c in cmds:
        p = _commands.run(c, tmp_path)
        assert p.returncode == 0, (c, p.stderr[-2000:])
        assert "warning" not in p.stderr, (c, p.stderr[-2000:])
    assert "Reward-model report card" in p.stdout


# ------------------------------------------------------------------------------------------------------------
# Hostile inputs and the first hour (issue 24): one line, exit status 2 (130 for Ctrl-C), nothing left behind
# ------------------------------------------------------------------------------------------------------------

def _with_prompts(argv, path):
    argv = list(argv)
    argv[argv.index("--prompts") + 1] = str(path)
    return argv


def _without_pairs(argv):
    argv = list(argv)
    i = argv.index("--off-policy")
    return argv[:i] + argv[i + 2:]


def _one_line(capsys):
    """The one error line (progress lines before it are allowed; a traceback is not)."""
    err = capsys.readouterr().err.strip()
    errors = [ln for ln in err.splitlines() if ln.startswith("rmtheory score: error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_a_prompts_file_that_is_not_utf8_is_one_line(models, tmp_path, capsys):
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"prompt_id": "p0", "prompt": "caf\xe9"}\n')
    assert cli(_without_pairs(_with_prompts(_argv(models, tmp_path / "x.csv"), bad))) == 2
    err = _one_line(capsys)
    assert "--prompts" in err and "line 1" in err and "UTF-8" in err


def test_a_prompt_longer_than_the_context_is_named_or_truncated_on_request(models, tmp_path, capsys):
    long = tmp_path / "long.jsonl"
    long.write_text(json.dumps({"prompt_id": "p0", "prompt": "ok"}) + "\n"
                    + json.dumps({"prompt_id": "p3", "prompt": " ".join(["cat"] * 5000)}) + "\n")
    argv = _without_pairs(_with_prompts(_argv(models, tmp_path / "x.csv"), long))
    assert cli(argv) == 2
    err = _one_line(capsys)
    assert "prompt p3 is 5,00" in err and "context of 128 tokens" in err and "--truncate-prompts" in err
    assert not os.path.exists(tmp_path / "x.csv.parts")  # nothing to block the corrected command
    assert cli(argv + ["--truncate-prompts"]) == 0
    assert len(_rows(tmp_path / "x.csv")) == 1 + 2 * K


def test_max_new_tokens_beyond_the_context_is_refused(models, tmp_path, capsys):
    argv = _argv(models, tmp_path / "x.csv", k=1)
    argv[argv.index("--max-new-tokens") + 1] = "500"
    assert cli(argv) == 2
    err = _one_line(capsys)
    assert "--max-new-tokens 500" in err and "128" in err
    argv[argv.index("--max-new-tokens") + 1] = "120"  # fits alone, not with the prompts
    assert cli(argv) == 2
    assert "the policy's context of 128 tokens holds at most 8" in _one_line(capsys)


def test_an_empty_prompt_without_chat_template_is_named(models, tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"prompt_id": "p0", "prompt": "cat"}) + "\n"
                     + json.dumps({"prompt_id": "blank", "prompt": ""}) + "\n")
    argv = _without_pairs(_with_prompts(_argv(models, tmp_path / "x.csv", "--no-chat-template"), empty))
    assert cli(argv) == 2
    err = _one_line(capsys)
    assert "prompt blank is empty" in err and "--no-chat-template" in err


@pytest.mark.parametrize("where", ["sampling", "scoring"])
def test_ctrl_c_exits_130_with_one_line_saying_how_to_resume(models, tmp_path, capsys, monkeypatch, where):
    cls, method = ((transformers.GPT2LMHeadModel, "generate") if where == "sampling"
                   else (transformers.GPT2ForSequenceClassification, "forward"))
    calls = []

    def interrupted(*a, **kw):
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(cls, method, interrupted)
    out = tmp_path / "x.csv"
    assert cli(_argv(models, out)) == 130
    assert calls
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and "interrupted" in err[-1] and "run the same command again to resume" in err[-1]
    assert not any("Traceback" in line for line in err)


def test_a_failed_model_load_does_not_block_the_corrected_command(models, tmp_path, capsys):
    out = tmp_path / "x.csv"
    not_a_model = tmp_path / "empty_dir"
    not_a_model.mkdir()
    argv = _argv(models, out)
    argv[argv.index("--policy") + 1] = str(not_a_model)
    assert cli(argv) == 2
    assert "--policy" in _one_line(capsys)
    assert not os.path.exists(S.output_paths(str(out))["parts"])
    # a reward model that fails after the samples are saved: fixing it keeps them and needs no --overwrite
    argv = _argv(models, out)
    argv[argv.index("--rm") + 1] = f"helpful={not_a_model}"
    assert cli(argv) == 2
    assert "helpful" in _one_line(capsys)
    assert cli(_argv(models, out)) == 0


def test_a_mistyped_local_path_says_no_such_directory(models, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.mkdir("demo")
    argv = _argv(models, "x.csv")
    argv[argv.index("--policy") + 1] = "demo/polcy"
    assert cli(argv) == 2
    assert _one_line(capsys) == "rmtheory score: error: --policy demo/polcy: no such directory"
    argv = _argv(models, "x.csv")
    argv[argv.index("--rm") + 1] = f"helpful={tmp_path}/no/such/rm"
    assert cli(argv) == 2
    assert f"--rm helpful {tmp_path}/no/such/rm: no such directory" in _one_line(capsys)
    argv = _argv(models, "x.csv")
    argv[argv.index("--ground-truth") + 1] = "gold=./gold"
    assert cli(argv) == 2
    assert "--ground-truth gold ./gold: no such directory" in _one_line(capsys)
    assert not os.path.exists("x.csv.parts") and not os.path.exists("x_score.json")


def test_a_hub_name_without_network_fails_fast(models, tmp_path, capsys, monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = _argv(models, tmp_path / "x.csv")
    argv[argv.index("--policy") + 1] = "rmtheory-no-such-org/no-such-model"
    t0 = time.perf_counter()
    assert cli(argv) == 2
    assert time.perf_counter() - t0 < 20  # transformers alone retries for ~55 s
    err = _one_line(capsys)
    assert "--policy rmtheory-no-such-org/no-such-model: no such directory" in err and "cache" in err


def test_the_policy_needs_a_language_modelling_head(models, tmp_path, capsys):
    argv = _argv(models, tmp_path / "x.csv")
    argv[argv.index("--policy") + 1] = models["rm_a"]
    assert cli(argv) == 2
    err = _one_line(capsys)
    assert "--policy" in err and "GPT2ForSequenceClassification" in err and "causal LM" in err


def test_one_model_in_memory_at_a_time(models, tmp_path, monkeypatch):
    """When a model loads, every model loaded before it has been freed (the promise of docs/score.md)."""
    import gc
    import weakref

    alive, peak = [], []

    def tracking(cls):
        real = cls.from_pretrained.__func__

        def from_pretrained(klass, *a, **kw):
            gc.collect()
            peak.append(sum(r() is not None for r in alive))
            model = real(klass, *a, **kw)
            alive.append(weakref.ref(model))
            return model
        monkeypatch.setattr(cls, "from_pretrained", classmethod(from_pretrained))

    tracking(transformers.AutoModelForCausalLM)
    tracking(transformers.AutoModelForSequenceClassification)
    assert cli(_argv(models, tmp_path / "x.csv")) == 0
    assert len(alive) == 4 and peak == [0, 0, 0, 0]


def test_progress_per_prompt_and_a_final_line_with_every_file_and_the_time(models, tmp_path, capsys, monkeypatch):
    import tqdm.auto

    class EveryUpdate(tqdm.auto.tqdm):  # draw every update: the test checks the granularity, not tqdm's 0.1 s rate
        def __init__(self, *a, **kw):
            super().__init__(*a, mininterval=0, miniters=1, **kw)

    monkeypatch.setattr(tqdm.auto, "tqdm", EveryUpdate)
    out = tmp_path / "x.csv"
    argv = [a for a in _argv(models, out) if a != "--no-progress"]
    assert cli(argv) == 0
    err = capsys.readouterr().err
    n = len(PROMPTS)
    assert f"{n - 1}/{n}" in err and f"{n}/{n}" in err  # advances per prompt, not per chunk of 2
    last = err.strip().splitlines()[-1]
    p = S.output_paths(str(out))
    for key in ("rewards", "samples", "pairs", "manifest"):
        assert p[key] in last, (key, last)
    assert re.search(r" in \d+\.\d s$", last)


def test_tiny_is_quiet(tmp_path):
    r = subprocess.run([sys.executable, "-m", "rmtheory.hf.tiny", str(tmp_path / "t")], capture_output=True,
                       text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0 and r.stderr == "", r.stderr[-500:]


def test_evaluate_reads_the_demo_without_a_warning(run0):
    report = evaluate(run0["rewards"], off_policy=run0["pairs"], ground_truth="gold", bootstrap=0)
    assert report.warnings == []


# --------------------------------------------------------------------------------------------------------
# --teaching-rate: per-sample score vectors of the policy, written as evaluate's sketch file
# --------------------------------------------------------------------------------------------------------

def _exact_grad(model, prompt_ids, response_ids, names):
    """∇ log π(y|x) of one sample by torch.autograd on the unpadded sequence (the reference)."""
    model.zero_grad()
    ids = torch.tensor([list(prompt_ids) + list(response_ids)])
    logp = torch.log_softmax(model(ids).logits[0].float(), -1)
    P = len(prompt_ids)
    lp = sum(logp[P - 1 + t, tok] for t, tok in enumerate(response_ids))
    lp.backward()
    params = dict(model.named_parameters())
    return torch.cat([params[n].grad.reshape(-1) for n in names]).detach().numpy()


def test_teaching_rate_step_writes_the_exact_score_vectors(models, tmp_path):
    """The gradients step differentiates exactly the sampled token ids (EOS included) under the policy:
    each row equals torch.autograd's gradient of that sample's log π(y|x), taken one sample at a time."""
    from rmtheory.hf import _inputs as I
    from rmtheory.hf import grads as G

    import argparse

    parser = argparse.ArgumentParser()
    S.configure(parser)
    args = parser.parse_args(_argv(models, tmp_path / "r.csv")[1:] + ["--teaching-rate", "--grad-params", "last:1"])
    s = I.settings(args, "cpu", "float32")
    prompts = S.read_prompts(models["prompts"])
    r = S.prepare(s, prompts, None, str(tmp_path / "r.csv"), "cpu", progress=False, log=lambda m: None)
    S.sample(r)
    S.gradients(r)
    with M.load("policy", s.policy, "--policy", "cpu", "float32") as lm:
        ids, _ = M.encode_prompts(lm, prompts, s)
        names = G.select_params(lm.model, "last:1")
        n_checked = 0
        for c, (a, b) in enumerate(r.p_chunks):
            gen = S.rio.load_json(r.part("gen", c))
            g = S.rio.load_npz(r.part("grads", c, ext="npz"))["g"]
            rows = [(ids[i], resp) for i, rs in zip(range(a, b), gen["response_ids"]) for resp in rs]
            assert g.shape[0] == len(rows) == (b - a) * K
            for row, (p, resp) in zip(g, rows):
                ref = _exact_grad(lm.model, p, resp, names)
                np.testing.assert_allclose(row, ref, rtol=2e-4, atol=2e-6)
                n_checked += 1
    assert n_checked == len(PROMPTS) * K


def test_teaching_rate_cli_writes_sketches_that_evaluate_reads(models, tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert cli(_argv(models, out, "--teaching-rate", "--sketch-dim", "64", "--then-evaluate")) == 0
    captured = capsys.readouterr()
    p = S.output_paths(str(out))
    assert p["sketches"] in captured.err.strip().splitlines()[-1]
    z = np.load(p["sketches"])
    assert z["g"].shape == (len(PROMPTS) * K, 64) and np.all(np.isfinite(z["g"]))
    assert [r[:2] for r in _rows(p["rewards"])[1:]] == [[a, b] for a, b in zip(z["prompt_id"], z["sample_id"])]
    assert "rate_G" in captured.out and "rate_self" in captured.out
    report = evaluate(p["rewards"], off_policy=p["pairs"], ground_truth="gold", sketches=p["sketches"], bootstrap=0)
    assert all(np.isfinite(m.rate_self) for m in report.models)
    # the same run without --teaching-rate drops the stale sketch file (after --overwrite: other settings)
    assert cli(_argv(models, out, "--overwrite")) == 0
    assert not os.path.exists(p["sketches"])


def test_exact_teaching_rate_writes_the_streamed_rates(models, tmp_path, capsys):
    """With exact gradients, <stem>_rates.json holds every model's pooled, per-prompt, Adam-geometry and sign
    rates from the streaming pass; its pooled and per-prompt rates equal evaluate's on the exact sketch file, and
    its memory is O(D × models) (the accumulator), not O(N × D)."""
    out = tmp_path / "r.csv"
    assert cli(_argv(models, out, "--teaching-rate", "--grad-params", "last:1", "--rate-minibatch", "6")) == 0
    capsys.readouterr()
    p = S.output_paths(str(out))
    rates = json.load(open(p["rates"]))
    assert rates["batch"] == 6 and rates["ground_truth"] == "gold" and not rates["skipped"]
    report = evaluate(p["rewards"], ground_truth="gold", sketches=p["sketches"], bootstrap=0)
    d = np.load(p["sketches"])["g"].shape[1]
    n_models = len(rates["models"])
    assert rates["accumulator_bytes"] == 8 * d * n_models * (20 + 2) + 8 * 20 * n_models**2
    for m in report.models:
        r = rates["models"][m.name]
        np.testing.assert_allclose([r["pooled_g"], r["pooled_self"], r["within_g"], r["within_self"]],
                                   [m.rate_g, m.rate_self, m.rate_g_within, m.rate_self_within], rtol=1e-4, atol=1e-7)
        assert all(np.isfinite(r[k]) for k in ("adam_g", "adam_self", "sign_g", "sign_self"))
    # a sketched run writes no rates file (the optimiser rates need exact per-coordinate moments)
    assert cli(_argv(models, out, "--teaching-rate", "--sketch-dim", "16", "--overwrite")) == 0
    assert not os.path.exists(p["rates"])


@pytest.mark.parametrize("extra, msg", [
    (["--sketch-dim", "8"], "need --teaching-rate"),
    (["--teaching-rate", "--top-p", "0.9"], "biased"),
    (["--teaching-rate", "--temperature", "0"], "greedy"),
    (["--teaching-rate", "--sketch-dim", "0"], "--sketch-dim must be >= 1"),
])
def test_teaching_rate_options_are_checked(models, tmp_path, capsys, extra, msg):
    assert cli(_argv(models, tmp_path / "r.csv", *extra)) == 2
    assert msg in _one_line(capsys)
