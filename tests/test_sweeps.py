"""Parallel, resumable sweeps and the report."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT

from mdcrl.report import main as report_main
from mdcrl.report import write_report

TINY = [
    "datamodule.dataset.num_samples.train=1200",
    "datamodule.dataset.num_samples.valid=400",
    "datamodule.dataset.num_samples.test=400",
    "datamodule.batch_size=256",
    "nonlinear_probe=false",
    "trainer.enable_progress_bar=false",
    "print_metrics=false",
    "~callbacks.visualization_callback",
]


def sweep_command(sweep_dir, *extra):
    return [
        sys.executable,
        "run_training.py",
        *TINY,
        "datamodule.dataset.num_domains=2,4",
        "seed=1,2",
        *extra,
        f"hydra.sweep.dir={sweep_dir}",
        "--multirun",
    ]


def run_dirs(sweep_dir):
    return sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.startswith("run-"))


def test_parallel_sweep_kill_rerun_skips_finished_resumes_killed_and_reports(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = sweep_command(sweep, "trainer.max_epochs=150")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    # Kill the whole sweep (launcher and workers) as soon as a run has checkpointed but not finished.
    killed_in = None
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if sweep.exists():
            for d in run_dirs(sweep):
                if (d / "checkpoints" / "last.ckpt").exists() and not (d / "metrics.json").exists():
                    killed_in = d
            if killed_in:
                os.killpg(proc.pid, signal.SIGKILL)
                break
        time.sleep(0.05)
    proc.wait()
    assert killed_in is not None, "the sweep finished before it could be interrupted"
    finished_before = {d: (d / "metrics.json").read_bytes() for d in run_dirs(sweep) if (d / "metrics.json").exists()}
    mtimes = {d: (d / "metrics.json").stat().st_mtime_ns for d in finished_before}

    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    dirs = run_dirs(sweep)
    assert len(dirs) == 4
    for d, content in finished_before.items():  # finished runs untouched
        assert (d / "metrics.json").read_bytes() == content and (d / "metrics.json").stat().st_mtime_ns == mtimes[d]
    info = json.loads((killed_in / "run.json").read_text())
    assert info["status"] == "finished" and info["resumed_from"].endswith("last.ckpt")
    assert all((d / "metrics.json").exists() for d in dirs)
    # Start-up is paid once per worker: the launcher's 2 workers ran every job of the second
    # command, one after another in the same process (run.json "process").
    rerun = [json.loads((d / "run.json").read_text())["process"] for d in dirs if d not in finished_before]
    assert len({p["pid"] for p in rerun}) <= 2 and os.getpid() not in {p["pid"] for p in rerun}
    if len(rerun) >= 3:
        assert max(p["run_in_process"] for p in rerun) >= 2

    # The report's cells against an independent computation from the metrics files.
    out = tmp_path / "report"
    result = write_report([sweep], out, ["r2_zinv_from_hinv", "r2_zsp_from_hinv"])
    assert result["finished"] == 4 and not result["problems"]
    table = result["table"]
    for k in (2, 4):
        values = []
        for d in dirs:
            cfg = (d / "config.yaml").read_text()
            if f"num_domains: {k}\n" in cfg:
                values.append(json.loads((d / "metrics.json").read_text())["r2_zsp_from_hinv"])
        row = table[(table.num_domains == k) & (table.metric == "r2_zsp_from_hinv")].iloc[0]
        assert row["count"] == 2
        assert row["mean"] == pytest.approx(np.mean(values))
        assert row["std"] == pytest.approx(np.std(values, ddof=1))
        assert row["column"] == "minmax, independent"
    md = (out / "report.md").read_text()
    assert "| z_dim | num_domains | minmax, independent |" in md and "(2) [" in md
    # the certificate mark: (8, 2) is certified for neither of these seeds, (8, 4) for both
    assert "(2) [0/2 id]" in md and "(2) [2/2 id]" in md
    assert (out / "report.csv").exists() and (out / "r2_zinv_from_hinv.png").exists()


def process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process states from /proc")
def test_workers_stop_when_the_launcher_is_terminated(tmp_path):
    # SIGTERM to the launcher alone (not its process group): its workers used to train on, orphaned,
    # holding the run locks; now each stops within seconds and leaves its run to be resumed
    sweep = tmp_path / "sweep"
    # runs that cannot end by themselves (the warm start's patience waives the floor)
    cmd = sweep_command(sweep, "trainer.max_epochs=5000", "trainer.min_epochs=5000", "model.warm_start_patience=null")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        workers, deadline = set(), time.time() + 300
        while time.time() < deadline and len(workers) < 2:
            for d in run_dirs(sweep) if sweep.exists() else []:
                try:
                    workers.add(json.loads((d / "run.json").read_text())["process"]["pid"])
                except (OSError, ValueError, KeyError):
                    pass
            time.sleep(0.1)
        assert len(workers) == 2, "the sweep's two workers did not start"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        deadline = time.time() + 60
        while time.time() < deadline and any(process_alive(pid) for pid in workers):
            time.sleep(0.2)
        assert not any(process_alive(pid) for pid in workers)
        assert not any((d / "metrics.json").exists() for d in run_dirs(sweep))
        logs = "".join((d / "run_training.log").read_text() for d in run_dirs(sweep))
        assert "the sweep's launcher" in logs and "has ended" in logs
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_submitit_local_launcher_runs_a_tiny_sweep(tmp_path):
    cmd = [
        sys.executable,
        "run_training.py",
        *TINY,
        "trainer.max_epochs=2",
        "datamodule.dataset.num_domains=2,4",
        "hydra/launcher=submitit_local",
        f"hydra.sweep.dir={tmp_path}",
        "--multirun",
    ]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len([d for d in run_dirs(tmp_path) if (d / "metrics.json").exists()]) == 2


def _fake_run(path, metrics_text, lr=0.03, version="0.1.0", status="finished", seed=1):
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(
        f"seed: {seed}\ndatamodule:\n  dataset:\n    z_dim: 8\n    num_domains: 4\n    correlated_z: false\n"
        f"model:\n  penalty_criterion:\n    minmax: 1.0\n    mmd: 0.0\n  optimizer:\n    lr: {lr}\n"
    )
    (path / "run.json").write_text(json.dumps({"status": status, "mdcrl_version": version, "tags": []}))
    if metrics_text is not None:
        (path / "metrics.json").write_text(metrics_text)


def test_report_flags_bad_runs_and_still_reports_the_good_ones(tmp_path, capsys):
    runs = tmp_path / "runs"
    _fake_run(runs / "a", json.dumps({"r2_zinv_from_hinv": 0.9, "r2_zsp_from_hinv": 0.1}))
    _fake_run(runs / "b", json.dumps({"r2_zinv_from_hinv": 0.7, "r2_zsp_from_hinv": 0.3}), lr=0.001, version="0.0.9")
    _fake_run(runs / "c", '{"r2_zinv_from_hi')  # truncated
    _fake_run(runs / "d", None, status="failed")
    _fake_run(runs / "e", json.dumps({"r2_zinv_from_hinv": 0.8, "r2_zsp_from_hinv": 0.2}), seed=2)
    result = write_report([runs], tmp_path / "out", ["r2_zinv_from_hinv"])
    row = result["table"].iloc[0]
    assert row["count"] == 3 and row["mean"] == pytest.approx(0.8)
    problems = "\n".join(result["problems"])
    assert "mixed settings ['model.optimizer.lr']" in problems and "mixed code versions" in problems
    assert "seeds ['1'] counted more than once" in problems
    assert "metrics.json is truncated or corrupt" in problems and str(runs / "c") in problems
    assert f"failed: {runs / 'd'}" in problems
    assert "## Problems" in (tmp_path / "out" / "report.md").read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as exit_:
        report_main([str(empty), "--out", str(tmp_path / "out2")])
    assert exit_.value.code == 2 and "error: no run directories" in capsys.readouterr().err
    assert report_main([str(tmp_path / "missing")]) == 2
    assert "no such path" in capsys.readouterr().err


def test_report_places_stage2_runs_by_their_recorded_data_and_counts_each_stage1_run(tmp_path):
    """Stage-2 configs hold no dataset: z_dim and num_domains come from run.json's data record, and the
    replicates of a two-stage sweep share the stage-2 seed but not their stage-1 run."""
    runs = tmp_path / "runs"
    for name, r2 in (("s1", 0.9), ("s2", 0.8)):
        path = runs / name
        path.mkdir(parents=True)
        (path / "config.yaml").write_text(f"seed: 1235\nrun_path: stage1/{name}\nmodel:\n  penalty_criterion:\n    minmax: 1.0\n")
        info = {"status": "finished", "mdcrl_version": "0.1.0", "tags": [], "data": {"z_dim": 14, "num_domains": 16}}
        (path / "run.json").write_text(json.dumps(info))
        (path / "metrics.json").write_text(json.dumps({"r2_zinv_from_hinv": r2}))
    result = write_report([runs], tmp_path / "out", ["r2_zinv_from_hinv"], plots=False)
    row = result["table"].iloc[0]
    assert (row["z_dim"], row["num_domains"], row["count"]) == (14, 16, 2) and row["mean"] == pytest.approx(0.85)
    assert result["problems"] == []


def test_run_id_does_not_depend_on_how_an_override_was_quoted():
    from mdcrl.resolvers import run_id

    typed = 'datamodule.dataset.z_dim=8,logger.wandb.tags=["linear-uniform","minmax"],seed=1235'
    shell_stripped = "datamodule.dataset.z_dim=8,logger.wandb.tags=[linear-uniform,minmax],seed=1235"
    assert run_id(typed) == run_id(shell_stripped)
    assert run_id(shell_stripped) != run_id(shell_stripped.replace("seed=1235", "seed=4256"))


def test_run_id_is_the_hash_of_what_the_run_computes(tmp_path):
    # an explicit default (model.init=moment), a presentation setting and another spelling of the
    # same value name the same directory; another seed does not
    from conftest import compose_config
    from omegaconf import OmegaConf

    from mdcrl.resolvers import run_id

    def job(*overrides):
        cfg = OmegaConf.to_container(compose_config(list(overrides), tiny=False))
        return OmegaConf.create({**cfg, "hydra": {"sweep": {"dir": str(tmp_path)}}})

    base = run_id("seed=3", job("seed=3"))
    assert run_id("model.init=moment,seed=3", job("seed=3", "model.init=moment")) == base
    assert run_id("print_metrics=false,seed=3", job("seed=3", "print_metrics=false")) == base
    assert run_id("model.optimizer.lr=1e-2,seed=3", job("seed=3", "model.optimizer.lr=1e-2")) == base
    assert run_id("seed=4", job("seed=4")) != base
    # a config that cannot be read as settings still gets a name (validation then refuses it)
    assert run_id("seed=3", OmegaConf.create({"seed": 3})).startswith("run-")


def test_run_id_keeps_a_directory_named_before_by_its_overrides(tmp_path):
    # sweeps made before the identity named the directories resume in their old ones, where those hold this run
    from conftest import compose_config
    from omegaconf import OmegaConf

    from mdcrl.resolvers import run_id

    cfg = compose_config(["seed=3"], tiny=False)
    root = OmegaConf.create({**OmegaConf.to_container(cfg), "hydra": {"sweep": {"dir": str(tmp_path)}}})
    legacy = run_id("seed=3")  # the override string's hash, the old name
    (tmp_path / legacy).mkdir()
    (tmp_path / legacy / "config.yaml").write_text(OmegaConf.to_yaml(compose_config(["seed=4"], tiny=False)))
    assert run_id("seed=3", root) != legacy  # it holds another run: not this one's directory
    (tmp_path / legacy / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    assert run_id("seed=3", root) == legacy


def test_sweeper_checks_one_job_per_config_group_choice_before_the_launch(tmp_path):
    from hydra_plugins.mdcrl_sweeper import job_shapes, representatives

    batch = [
        ["model/autoencoder=linear_ae", "datamodule.dataset.z_dim=8", "seed=1"],
        ["model/autoencoder=linear_ae", "datamodule.dataset.z_dim=16", "seed=1"],
        ["model/autoencoder=mlp_ae", "datamodule.dataset.z_dim=8", "seed=1"],
        ["model/autoencoder=mlp_ae", "datamodule.dataset.z_dim=16", "hydra.launcher.n_jobs=1"],
    ]
    groups = {"model/autoencoder", "model", "datamodule"}
    assert list(representatives(batch, job_shapes(batch, groups.__contains__)).values()) == [batch[0], batch[2], batch[3]]
    # A group option that does not exist, picked by a later job only, still stops the sweep before
    # any run starts: every distinct group choice is composed first.
    cmd = sweep_command(tmp_path, "model/autoencoder=linear_ae,no_such_autoencoder")
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "no_such_autoencoder" in done.stderr
    assert run_dirs(tmp_path) == []
    # A value that composes but that mdcrl refuses, in the last job only: one line, before any run.
    done = subprocess.run(
        sweep_command(tmp_path, "datamodule.dataset.z_dim=4,-3"), cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: datamodule.dataset.z_dim=-3 must be >= 2; set datamodule.dataset.z_dim=<a whole number >= 2>."
    )
    assert run_dirs(tmp_path) == []


def test_the_check_of_every_job_before_a_cpu_sweeps_launch_does_not_import_torch():
    # The check runs in the sweep's main process; importing torch there cost every sweep 1.3 s.
    # A GPU accelerator still imports it, to see whether a GPU is there.
    script = """
import sys
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra_plugins.mdcrl_sweeper import validate_values
from mdcrl.settings import compose_train_config
plain = OverridesParser.create().parse_overrides(["datamodule.dataset.z_dim=16"])
presets = [[], ["model.penalty_criterion.mmd=1."], ["experiment=mnist_cpu_stage1"], ["experiment=balls_cpu_stage1"]]
validate_values([(compose_train_config(p), plain) for p in presets])
print("torch" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
