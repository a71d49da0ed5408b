"""Configs a researcher can change without editing code; hostile configs and run dirs give one-line errors
and leave the directory as they found it; RM properties under the Table 9 normalisation."""

import json
import os

import numpy as np
import pytest

from rmtheory import io
from rmtheory.cli import main as cli_main
from rmtheory.lm import analysis
from rmtheory.lm.config import SOURCES, Config, get_config
from rmtheory.lm.rundir import RunDir


def test_set_overrides_values_and_nested_groups():
    cfg = get_config("small").with_overrides(["rl_lr=1e-4", "k=4", "teacher.conf_hard=0.6", "seeds.rl=[0,1,2,3,4]",
                                              "rm_readout=mean"])
    assert cfg.rl_lr == 1e-4 and cfg.k == 4 and cfg.teacher.conf_hard == 0.6 and cfg.seeds.rl == (0, 1, 2, 3, 4)
    assert cfg.rm_readout == "mean" and cfg.teacher.sub == get_config("small").teacher.sub


@pytest.mark.parametrize("assignment, match", [
    ("k=1", "k must be >= 2"),
    ('k="2"', "k must be an integer"),
    ("k=2.5", "k must be an integer"),
    ("rl_lr=NaN", "rl_lr must be a finite number"),
    ("rl_lr=-1", "rl_lr must be > 0"),
    ("bogus=1", "unknown key"),
    ("teacher.bogus=1", "unknown key"),
    ("k", "key=value"),
    ("rm_readout=cnn", "rm_readout must be one of"),
    ("teacher.conf_hard=1.5", "conf_hard must be in"),
    ('seeds.rl=["a"]', "rl must be a list of integers"),
    ("seeds.rl=[]", "seeds.rl must name at least one seed"),
])
def test_set_errors_name_the_key(assignment, match):
    with pytest.raises(ValueError, match=match):
        get_config("small").with_overrides([assignment])


def test_config_from_json_file_partial_and_typed(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"name": "tiny", "rl_lr": 1e-3, "seeds": {"rl": [3, 4, 5]}}))
    cfg = get_config(str(p))
    assert cfg.n_train == get_config("tiny").n_train and cfg.rl_lr == 1e-3 and cfg.seeds.rl == (3, 4, 5)
    for bad, match in (({"k": "2"}, "k must be an integer"), ({"seeds": {"rl": 5}}, "seeds.rl must be a list"),
                       ([1, 2], "must be a JSON object")):
        p.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=match) as e:
            get_config(str(p))
        assert str(p) in str(e.value)
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON") as e:
        get_config(str(p))
    assert str(p) in str(e.value)


def _listing(d):
    return sorted(os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs)


def test_failing_stage_command_leaves_the_directory_untouched(tmp_path, capsys):
    d = tmp_path / "emptydir"
    d.mkdir()
    assert cli_main(["lm", "rl", "--out", str(d)]) == 2
    assert "holds no config.json" in capsys.readouterr().err
    assert cli_main(["lm", "rl", "--config", "tiny", "--out", str(d)]) == 2
    assert "needs the output of stage(s)" in capsys.readouterr().err
    assert _listing(str(d)) == [] and os.listdir(d) == []
    # and a later run in it is not refused: nothing was written
    RunDir(str(d)).check_config(get_config("tiny"))


def test_bad_out_and_bad_stored_config_are_one_line_errors(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert cli_main(["lm", "run", "--config", "tiny", "--out", str(f)]) == 2
    assert "is a file" in capsys.readouterr().err
    d = tmp_path / "run"
    d.mkdir()
    (d / "config.json").write_text("{corrupt")
    assert cli_main(["lm", "run", "--config", "tiny", "--out", str(d)]) == 2
    err = capsys.readouterr().err
    assert "config.json" in err and "not valid JSON" in err
    (d / "config.json").write_text(json.dumps({"config": {"k": "2"}}))
    assert cli_main(["lm", "run", "--out", str(d)]) == 2
    assert "k must be an integer" in capsys.readouterr().err
    assert cli_main(["lm", "run", "--config", "tiny", "--set", "k=1", "--out", str(tmp_path / "new")]) == 2
    assert "k must be >= 2" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def _synthetic_run(tmp_path, norm_scheme):
    """A run dir holding only what the analyze stage reads, with known RM properties."""
    cfg = get_config("tiny").replace(norm_scheme=norm_scheme)
    run = RunDir(str(tmp_path / norm_scheme))
    run.save_config(cfg)
    rng = np.random.default_rng(0)
    names = list(SOURCES) + ["sft_likelihood", "correct_letters", "correct_letters_len"]
    report = {}
    for i, s in enumerate(names):
        g = {"var": 0.1 + 0.1 * i, "acc_on": 0.5 + 0.04 * i, "acc_off": 0.6 + 0.03 * i, "mean": 0.0, "std": 1.0}
        g.update(on_off=0.5 * (g["acc_on"] + g["acc_off"]))
        g.update(var_acc=0.5 * (g["var"] + g["on_off"]))
        pv = dict(g, var=1.0)  # the per-prompt-variance scheme makes Var ≡ 1 (the old bug's input)
        report[s] = {"global": g, "prompt_variance": pv}
    initial = {"gt_between_prompt_share": 0.3, "distinct_per_prompt": 7.0, "gt_tie_fraction": 0.06,
               "chance_on_acc": 0.47, "gt_mean": 0.1, "hard_fraction_of_prompts": 0.6}
    run.save_json("rm_eval.json", {"report": report, "norm_stats": {s: [0.0, 1.0] for s in names},
                                   "norm_scheme": norm_scheme, "initial_policy": initial})
    runs = [{"source": s, "seed": k} for s in SOURCES for k in (0, 1, 2)]
    E = cfg.rl_epochs + 1
    inc = np.cumsum(rng.normal(0.05, 0.01, (E, len(runs))), 0)
    inc[0] = 0
    os.makedirs(run.path("rl"))
    run.save_json("rl/results.json", {"runs": runs, "proxy_increase": inc, "gt_increase": inc * 0.5,
                                      "test_gt_increase": inc * 0.4, "kl_train": np.abs(inc),
                                      "adam_steps_per_epoch": 120})
    return run


def test_table9_keeps_globally_normalised_rm_properties(tmp_path):
    """Under norm_scheme = prompt_variance only the RL normalisation changes; Var is not ≡ 1 (old bug)."""
    run = _synthetic_run(tmp_path, "prompt_variance")
    s = analysis.analyze(run, log=lambda m: None)
    for src in SOURCES:
        assert s["table1"][src]["var"] == json.load(open(run.path("rm_eval.json")))["report"][src]["global"]["var"]
    assert len({round(s["table1"][x]["var"], 6) for x in SOURCES}) == len(SOURCES)
    assert s["table2"]["Var"]["proxy_pearson"] is not None
    io.load_json(run.path("figures", "lm_tables.json"))  # strict


def test_undefined_correlation_is_null_not_nan(tmp_path):
    from rmtheory.lm.config import CORR_SOURCES
    from rmtheory.lm.measure import correlation_table

    metrics = {s: {"var": 0.5, "acc_on": 0.6 + 0.01 * i, "acc_off": 0.7} for i, s in enumerate(CORR_SOURCES)}
    t = correlation_table(metrics, {s: float(i) for i, s in enumerate(CORR_SOURCES)}, {s: 1.0 for s in CORR_SOURCES})
    assert t["Var"]["proxy_pearson"] is None and t["On"]["gt_spearman"] is None
    assert t["On"]["proxy_spearman"] == pytest.approx(1.0)
    json.loads(io.dumps(t), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def test_small_config_meets_the_instrument_shape():
    cfg = Config()
    assert cfg.adam_steps_per_epoch >= 100 and len(cfg.seeds.rl) >= 3
    assert cfg.n_eval_prompts == 500 and cfg.n_eval_samples == 10


@pytest.mark.slow
def test_ctrl_c_is_a_one_line_message_and_leaves_no_partial_artifact(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "rmtheory.cli", "lm", "run", "--config", "tiny", "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not (out / "data.npz").exists() and time.time() - t0 < 120:  # interrupt inside the SFT stage
        time.sleep(0.2)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "interrupted" in err and "re-run the same command to resume" in err
    assert "Traceback" not in err
    left = [f for f in os.listdir(out) if f.startswith(".tmp")]
    assert left == []
    io.load_json(str(out / "config.json"))
    np.load(str(out / "data.npz"))


def test_relative_run_dir_is_relative_to_the_working_directory_or_none(tmp_path, monkeypatch):
    from rmtheory.lm.rundir import relative_run_dir

    monkeypatch.chdir(tmp_path)
    assert relative_run_dir(str(tmp_path / "runs" / "g")) == os.path.join("runs", "g")
    assert relative_run_dir(os.path.join("runs", "g")) == os.path.join("runs", "g")
    assert relative_run_dir(str(tmp_path.parent / "elsewhere")) is None
    assert relative_run_dir(str(tmp_path.parent)) is None
