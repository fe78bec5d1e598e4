"""Bad input, kills, tampered and edited files: clear errors, nothing lost, nothing stale."""

import json
import os
import subprocess
import sys

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import QUIET, ROOT, compose_config

from mdcrl import InvariantAutoencoder, builders
from mdcrl.errors import ConfigError, DataInputError, EncodedDataError, SavedModelError
from mdcrl.report import main as report_main
from mdcrl.train import run


# -- settings ------------------------------------------------------------------------------------
def test_memory_estimate_names_the_setting(compose):
    from mdcrl.validation import estimated_data_bytes

    cfg = compose(["datamodule.dataset.num_samples.train=150000000"])
    assert estimated_data_bytes(cfg.datamodule) > 50 * 1024**3  # about 80 GiB: refused on a 24 GiB machine


def cli(*args, env=None, cwd=ROOT):
    full_env = {**os.environ, "MDCRL_FULL_ERROR": "", **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "run_training.py"), *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300
    )


def test_cli_prints_one_line_and_leaves_no_directory(tmp_path):
    run_dir = tmp_path / "run"
    p = cli("datamodule.dataset.num_domains=2.7", f"hydra.run.dir={run_dir}")
    assert p.returncode == 2
    assert "Traceback" not in p.stderr + p.stdout
    assert p.stderr.strip() == (
        "error: datamodule.dataset.num_domains=2.7 must be a whole number; set datamodule.dataset.num_domains=<integer>."
    )
    assert not run_dir.exists()  # neither .hydra/ nor an empty log
    full = cli("datamodule.dataset.num_domains=2.7", f"hydra.run.dir={run_dir}", env={"MDCRL_FULL_ERROR": "1"})
    assert full.returncode != 0 and "Traceback" in full.stderr


@pytest.mark.parametrize(
    "args,line",
    [
        (
            ["trainer.max_epoch=3"],
            "error: trainer.max_epoch is not a setting; did you mean trainer.max_epochs? (python run_training.py --cfg "
            "job prints every setting; +trainer.max_epoch=<value> adds a key the configs do not have)",
        ),
        (
            ["model.penalty_criterion.domain_mean=1,0", "--multirun"],
            "error: model.penalty_criterion.domain_mean is not a setting; did you mean model.penalty_criterion.domain_means? "
            "(python run_training.py --cfg job prints every setting; +model.penalty_criterion.domain_mean=<value> adds a "
            "key the configs do not have)",
        ),
        (
            ["model=mixing_synthetc"],
            "error: model=mixing_synthetc is not an option of model; did you mean model=mixing_synthetic? the options: "
            "balls, balls_md_encoded_autoencoder, mixing_md_encoded_autoencoder, mixing_synthetic, mnist_md_autoencoder, "
            "mnist_md_encoded_autoencoder.",
        ),
        (
            ["+trainer.max_epoch=3"],
            "error: trainer.max_epoch is not an argument of lightning.Trainer; did you mean trainer.max_epochs? remove "
            "trainer.max_epoch from the command line (or config).",
        ),
    ],
)
def test_a_misspelt_key_or_option_gets_one_line_with_the_nearest_name(tmp_path, args, line):
    p = cli(f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}", *args)
    assert (p.returncode, p.stderr.strip()) == (2, line)
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob("sweep/run-*"))


def test_hydra_full_error_still_shows_hydras_traceback_and_other_override_errors_keep_hydras_message():
    full = cli("trainer.max_epoch=3", env={"HYDRA_FULL_ERROR": "1"})
    assert full.returncode == 1 and "Traceback" in full.stderr and "Key 'max_epoch' is not in struct" in full.stderr
    unparsed = cli("trainer.max_epochs")  # no value: Hydra's own grammar error, as before
    assert unparsed.returncode == 1 and unparsed.stderr.startswith("Error parsing override 'trainer.max_epochs'")
    assert "Traceback" not in unparsed.stderr


# -- resume --------------------------------------------------------------------------------------
class KillAtEpoch(L.Callback):
    """Stands in for a kill: dies at the start of an epoch, after the previous one was checkpointed."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("killed")  # not KeyboardInterrupt: Lightning turns that into SystemExit


def killed_once(monkeypatch, epoch):
    build = builders.build_callbacks
    calls = []

    def with_kill(settings, run_dir):
        calls.append(1)
        return build(settings, run_dir) + ([KillAtEpoch(epoch)] if len(calls) == 1 else [])

    monkeypatch.setattr(builders, "build_callbacks", with_kill)


def csv_epochs(run_dir):
    frame = pd.read_csv(run_dir / "csv" / "metrics.csv")
    return frame[frame["val/loss"].notna()]["epoch"].astype(int).tolist()


@pytest.mark.parametrize("selection_epochs", ["null", "3"])  # 3: the kill falls after the restarts narrowed
def test_kill_and_resume_keeps_curves_and_gives_the_uninterrupted_metrics(tmp_path, compose, monkeypatch, selection_epochs):
    cfg = compose(["trainer.max_epochs=8", "callbacks.early_stopping=null", f"model.restart_selection_epochs={selection_epochs}"])
    run(cfg, run_dir=tmp_path / "whole")
    killed_once(monkeypatch, 5)
    with pytest.raises(BaseException, match="killed"):
        run(cfg, run_dir=tmp_path / "resumed")
    assert csv_epochs(tmp_path / "resumed") == [0, 1, 2, 3, 4]
    first = json.loads((tmp_path / "resumed" / "run.json").read_text())
    run(cfg, run_dir=tmp_path / "resumed")
    info = json.loads((tmp_path / "resumed" / "run.json").read_text())
    assert info["resumed_from"].endswith("last.ckpt") and info["attempts"] == 2
    assert info["started"] == first["started"]
    assert csv_epochs(tmp_path / "resumed") == list(range(8))
    whole, resumed = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("whole", "resumed"))
    assert resumed == whole


def test_kill_and_resume_keeps_the_warm_start_patience_state(tmp_path, compose, monkeypatch):
    # The first epoch beats the warm start's bar (margin 0), so the patience of 2 must not stop the
    # run but narrow it to the leading warm copy, also after a kill at epoch 3 and a resume: both
    # decisions are in the checkpoint.
    cfg = compose(["model.warm_start_margin=0", "model.warm_start_patience=2", "trainer.max_epochs=6", "trainer.min_epochs=6"])
    run(cfg, run_dir=tmp_path / "whole")
    killed_once(monkeypatch, 3)
    with pytest.raises(BaseException, match="killed"):
        run(cfg, run_dir=tmp_path / "resumed")
    state = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]
    assert state["WarmStartPatience"] == {
        "beaten": True,
        "narrowed_from": 2,
        "narrowed_because": "warm copy leads",
        "stopped_epoch": None,
        "last_agreement": None,
    }
    assert state["StopMemory"] == {"stopped": False}
    run(cfg, run_dir=tmp_path / "resumed")
    infos = [json.loads((tmp_path / d / "run.json").read_text()) for d in ("whole", "resumed")]
    assert [i["epochs"] for i in infos] == [6, 6] and infos[1]["attempts"] == 2
    assert [i["warm_start"]["narrowed_at"] for i in infos] == [2, 2]
    whole, resumed = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("whole", "resumed"))
    assert resumed == whole


@pytest.mark.parametrize(
    "stopper",
    [
        # the warm start's patience: no epoch can beat the bar (margin 1000), the run stops after 2 epochs
        ["model.warm_start_margin=1000", "model.warm_start_patience=2", "trainer.min_epochs=6"],
        # early stopping: no epoch improves by 10, so with patience 1 it stops after the floor of 3 epochs
        ["callbacks.early_stopping.min_delta=10", "callbacks.early_stopping.patience=1", "trainer.min_epochs=3"],
    ],
    ids=["warm-start-patience", "early-stopping"],
)
def test_a_kill_between_the_fit_and_the_evaluation_resumes_to_the_same_stop(tmp_path, compose, monkeypatch, stopper):
    # Lightning does not checkpoint its decision to stop: resumed from last.ckpt, such a run trained on
    # (to the floor, or max_epochs) and could end elsewhere than the uninterrupted run.
    cfg = compose([*stopper, "trainer.max_epochs=8"])
    run(cfg, run_dir=tmp_path / "whole")
    import mdcrl.train

    evaluate = mdcrl.train.evaluate
    calls = []

    def killed_in_evaluation(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("killed")
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(mdcrl.train, "evaluate", killed_in_evaluation)
    with pytest.raises(BaseException, match="killed"):
        run(cfg, run_dir=tmp_path / "resumed")
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    run(cfg, run_dir=tmp_path / "resumed")
    infos = [json.loads((tmp_path / d / "run.json").read_text()) for d in ("whole", "resumed")]
    assert infos[0]["epochs"] < 8 and infos[1]["epochs"] == infos[0]["epochs"] and infos[1]["attempts"] == 2
    assert infos[1].get("warm_start", {}).get("stopped_by_patience") == infos[0].get("warm_start", {}).get("stopped_by_patience")
    whole, resumed = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("whole", "resumed"))
    assert resumed == whole


def test_truncated_last_checkpoint_is_set_aside_and_the_run_starts_again(tmp_path, compose, monkeypatch):
    cfg = compose(["trainer.max_epochs=5"])
    run_dir = tmp_path / "run"
    killed_once(monkeypatch, 3)
    with pytest.raises(BaseException, match="killed"):
        run(cfg, run_dir=run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    run(cfg, run_dir=run_dir)
    info = json.loads((run_dir / "run.json").read_text())
    aside = run_dir / os.path.basename(info["set_aside"])
    assert (aside / "checkpoints" / "last.ckpt").exists() and csv_epochs(aside) == [0, 1, 2]
    assert (run_dir / "metrics.json").exists() and csv_epochs(run_dir) == list(range(5))


def test_checkpoint_with_pickled_code_is_refused(tmp_path, compose):
    bad = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": KillAtEpoch(1)}, bad)
    with pytest.raises(ConfigError, match="cannot be loaded safely"):
        run(compose([f"ckpt_path={bad}"]), run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_result_files_are_readable_like_other_files(tmp_path, compose):
    old = os.umask(0o022)
    try:
        run(compose(["trainer.max_epochs=1"]), run_dir=tmp_path)
    finally:
        os.umask(old)
    for name in ("metrics.json", "run.json", "config.yaml"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


# -- own data ------------------------------------------------------------------------------------
def own_table(path, labels=None, latents=True, n=800):
    rng = np.random.default_rng(0)
    z = rng.uniform(-1, 1, (n, 4))
    domain = np.arange(n) % 4
    z[:, 2:] += domain[:, None]
    frame = pd.DataFrame(z @ rng.normal(size=(4, 8)), columns=[f"x{i}" for i in range(8)])
    frame["domain"] = domain if labels is None else labels
    if latents:
        for j in range(4):
            frame[f"z{j}"] = z[:, j]
    frame.to_csv(path, index=False)
    return path


def from_file(path, *extra):
    return compose_config(QUIET + ["datamodule=from_file", f"datamodule.path={path}", "trainer.max_epochs=2", *extra], tiny=False)


def test_own_data_without_latents_trains_and_plots(tmp_path):
    path = own_table(tmp_path / "data.csv", latents=False)
    cfg = compose_config(
        [
            "datamodule=from_file",
            f"datamodule.path={path}",
            "model.z_dim=4",
            "model.z_dim_invariant=2",
            "trainer.max_epochs=2",
            "trainer.enable_progress_bar=false",
            "print_metrics=false",
        ],
        tiny=False,
    )
    metrics = run(cfg, run_dir=tmp_path / "run")
    assert "diagnostics" in metrics and "r2_zinv_from_hinv" not in metrics
    assert (tmp_path / "run" / "plots" / "latents.png").exists()


def test_edited_data_file_is_not_mistaken_for_the_finished_run(tmp_path):
    path = own_table(tmp_path / "data.csv")
    cfg = from_file(path, "datamodule.latent_columns=[z0,z1,z2,z3]", "datamodule.z_dim_invariant_true=2")
    run(cfg, run_dir=tmp_path / "run")
    before = (tmp_path / "run" / "metrics.json").read_text()
    assert run(cfg, run_dir=tmp_path / "run") == json.loads(before)  # unchanged data: skipped
    own_table(path, n=1000)
    with pytest.raises(ConfigError, match="made from other data"):
        run(cfg, run_dir=tmp_path / "run")
    assert (tmp_path / "run" / "metrics.json").read_text() == before


@pytest.mark.parametrize(
    "labels,message",
    [
        (np.array(["lonely"] + ["a", "b", "c", "d"] * 199 + ["a", "b", "c"], dtype=object), r"\('lonely', 1\)"),
        (np.r_[np.nan, np.arange(799) % 4], "1 domain labels are missing"),
    ],
)
def test_domain_labels_get_clear_errors(tmp_path, labels, message):
    path = own_table(tmp_path / "data.csv", labels=labels, latents=False)
    with pytest.raises(DataInputError, match=message):
        run(from_file(path, "model.z_dim=4", "model.z_dim_invariant=2"), run_dir=tmp_path / "run")


def test_header_only_csv_says_no_rows(tmp_path):
    (tmp_path / "empty.csv").write_text("x0,x1,domain\n")
    with pytest.raises(DataInputError, match="has no rows"):
        run(from_file(tmp_path / "empty.csv", "model.z_dim=2", "model.z_dim_invariant=1"), run_dir=tmp_path / "run")


# -- stage 2 on edited encodings -----------------------------------------------------------------
@pytest.fixture(scope="module")
def stage1_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("stage1")
    run(compose_config(["model.save_encoded_data=true", "trainer.max_epochs=1"]), run_dir=run_dir)
    return run_dir


def _nan_z_hat(meta, run_dir):
    from safetensors.numpy import load_file, save_file

    from mdcrl.io import sha256_file

    path = run_dir / "encoded" / "train.safetensors"
    arrays = load_file(str(path))
    arrays["z_hat"][0, 0] = np.nan
    save_file(arrays, str(path))
    meta["splits"]["train"]["sha256"] = sha256_file(path)


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda m, d: m.pop("splits"), "lacks a valid 'splits' entry"),
        (lambda m, d: m.update(num_domains="four"), "num_domains='four' must be a whole number"),
        (lambda m, d: m["splits"]["train"].update(file="../../secrets.safetensors"), "lacks a valid 'splits' entry"),
        (_nan_z_hat, "NaN/inf values in z_hat"),
    ],
)
def test_edited_stage1_metadata_is_refused(stage1_run, tmp_path, edit, message):
    import shutil

    copy = tmp_path / "stage1"
    shutil.copytree(stage1_run, copy)
    meta_path = copy / "encoded" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    edit(meta, copy)
    meta_path.write_text(json.dumps(meta))
    cfg = compose_config(
        QUIET + ["datamodule=mixing_encoded", "model=mixing_md_encoded_autoencoder", f"run_path={copy}"], tiny=False
    )
    with pytest.raises(EncodedDataError, match=message):
        run(cfg, run_dir=tmp_path / "stage2")
    assert not (tmp_path / "stage2").exists()


def test_refused_run_dir_inside_stage1_writes_nothing_there(stage1_run):
    before = sorted(p.relative_to(stage1_run) for p in stage1_run.rglob("*"))
    p = cli(
        "datamodule=mixing_encoded",
        "model=mixing_md_encoded_autoencoder",
        f"run_path={stage1_run}",
        f"hydra.run.dir={stage1_run / 'stage2'}",
    )
    assert p.returncode == 2 and p.stderr.startswith("error: the run directory") and "Traceback" not in p.stderr
    assert sorted(p.relative_to(stage1_run) for p in stage1_run.rglob("*")) == before


# -- report --------------------------------------------------------------------------------------
@pytest.mark.parametrize("content,problem", [("[1, 2]", "holds a list"), ('{"r2_zinv_from_hinv": "high"}', "non-numeric values")])
def test_report_lists_unusable_metrics_files_as_problems(tmp_path, content, problem, capsys):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "config.yaml").write_text("seed: 1\n")
    (tmp_path / "runs" / "a" / "metrics.json").write_text(content)
    assert report_main([str(tmp_path / "runs"), "--out", str(tmp_path / "report"), "--no-plots"]) == 0
    assert problem in (tmp_path / "report" / "report.md").read_text()


def test_report_out_pointing_at_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert report_main([str(tmp_path), "--out", str(tmp_path / "file")]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: --out {tmp_path / 'file'} is a file; pass a directory for report.md, report.csv and the plots."
    )


# -- estimator -----------------------------------------------------------------------------------
def arrays(n=400, shift=0.0):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 6)) + shift, np.arange(n) % 4


@pytest.fixture(scope="module")
def saved_estimator(tmp_path_factory):
    x, d = arrays()
    est = InvariantAutoencoder(z_dim=4, z_dim_stable=2, max_epochs=2, random_state=0).fit(x, d)
    return est.save(tmp_path_factory.mktemp("est") / "model")


def tampered(saved, tmp_path, edit):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(saved, copy)
    edit(copy)
    return copy


def _edit_json(change):
    def edit(path):
        state = json.loads((path / "estimator.json").read_text())
        change(state)
        (path / "estimator.json").write_text(json.dumps(state))

    return edit


def _nan_weights(path):
    from safetensors.torch import load_file, save_file

    from mdcrl.io import sha256_file

    weights = load_file(str(path / "weights.safetensors"))
    next(v for k, v in weights.items() if k.endswith("weight"))[...] = float("nan")
    save_file(weights, str(path / "weights.safetensors"))
    _edit_json(lambda s: s.update(weights_sha256=sha256_file(path / "weights.safetensors")))(path)


@pytest.mark.parametrize(
    "edit,message",
    [
        (_nan_weights, "NaN/inf values"),
        (_edit_json(lambda s: s.update(x_std=[0.0] * 6)), "x_std > 0"),
        (
            _edit_json(lambda s: s["settings"]["model"]["autoencoder"].update(name="mlp", hidden_dims=[200000, 200000])),
            "another architecture",
        ),
        (
            lambda p: (p / "weights.safetensors").write_bytes((p / "weights.safetensors").read_bytes()[:-8] + b"\0" * 8),
            "checksum",
        ),
        (lambda p: (p / "estimator.json").write_text("{"), "cannot be read"),
        (_edit_json(lambda s: s["params"].update(restarts=3)), r"the parameters \['restarts'\] disagree"),
    ],
)
def test_tampered_estimator_directory_is_refused(saved_estimator, tmp_path, edit, message):
    with pytest.raises(SavedModelError, match=message):
        InvariantAutoencoder.load(tampered(saved_estimator, tmp_path, edit))


def test_estimator_errors_before_fit_and_on_non_integers():
    from sklearn.exceptions import NotFittedError

    x, _ = arrays()
    d = np.arange(len(x)) % 4
    with pytest.raises(NotFittedError, match="not fitted yet"):
        InvariantAutoencoder(z_dim=4, z_dim_stable=2).transform(x)
    with pytest.raises(ValueError, match="z_dim=4.5 must be a positive integer"):
        InvariantAutoencoder(z_dim=4.5, z_dim_stable=2).fit(x, d)


def test_estimator_run_dir_reused_with_same_data_and_refused_with_other(tmp_path):
    x, d = arrays()
    first = InvariantAutoencoder(z_dim=4, z_dim_stable=2, max_epochs=2, random_state=0).fit(x, d, run_dir=tmp_path / "r")
    again = InvariantAutoencoder(z_dim=4, z_dim_stable=2, max_epochs=2, random_state=0).fit(x, d, run_dir=tmp_path / "r")
    assert np.array_equal(first.transform(x), again.transform(x))
    with pytest.raises(ConfigError, match="made from other data"):
        again.fit(x + 1.0, d, run_dir=tmp_path / "r")


# -- second round: one writer per run directory, checkpoints of the run's own, regular files only --
def test_a_run_directory_being_written_is_left_alone_by_a_second_launcher(tmp_path, compose):
    # Another process holds the run's lock (as a first launcher of the same sweep would).
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from mdcrl.rundir import RunLock; RunLock(sys.argv[1]).acquire(); print('held', flush=True); "
            "time.sleep(120)",
            str(tmp_path / "run"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert run(compose([]), run_dir=tmp_path / "run") == {}  # skipped, saying so
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["run.lock"]  # nothing written
        assert f"process {holder.pid}" in (tmp_path / "run" / "run.lock").read_text()
    finally:
        holder.kill()  # like a crash: the kernel drops the lock, nothing stale is left to clear
        holder.wait()
    metrics = run(compose([]), run_dir=tmp_path / "run")
    assert "r2_zinv_from_hinv" in metrics and not (tmp_path / "run" / "run.lock").exists()
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["attempts"] == 1 and info["status"] == "finished"


def test_a_run_continued_from_another_runs_checkpoint_never_reports_that_run(tmp_path, compose):
    run(compose(["trainer.max_epochs=3"]), run_dir=tmp_path / "a")
    cfg = compose(["trainer.max_epochs=3", f"ckpt_path={tmp_path / 'a' / 'checkpoints' / 'last.ckpt'}"])
    run(cfg, run_dir=tmp_path / "b")  # resumes at max_epochs: no epoch trains in b
    info = json.loads((tmp_path / "b" / "run.json").read_text())
    assert not str(info["best_checkpoint"] or "").startswith(str(tmp_path / "a"))


def test_a_checkpoint_with_non_finite_weights_is_refused_as_ckpt_path(tmp_path, compose):
    run(compose(["trainer.max_epochs=2"]), run_dir=tmp_path / "a")
    checkpoint = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["state_dict"] = {
        k: v.float().fill_(float("nan")) if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()
    }
    torch.save(checkpoint, tmp_path / "nan.ckpt")
    with pytest.raises(ConfigError, match="holds non-finite weights"):
        run(compose(["trainer.max_epochs=3", f"ckpt_path={tmp_path / 'nan.ckpt'}"]), run_dir=tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_a_stage1_encoding_linked_to_a_device_is_refused_at_once(stage1_run, tmp_path):
    import shutil

    copy = tmp_path / "stage1"
    shutil.copytree(stage1_run, copy)
    (copy / "encoded" / "train.safetensors").unlink()
    (copy / "encoded" / "train.safetensors").symlink_to("/dev/zero")
    cfg = compose_config(
        QUIET + ["datamodule=mixing_encoded", "model=mixing_md_encoded_autoencoder", f"run_path={copy}"], tiny=False
    )
    with pytest.raises(OSError, match="is not a regular file"):
        run(cfg, run_dir=tmp_path / "stage2")
    assert not (tmp_path / "stage2").exists()


def test_json_and_checkpoint_readers_refuse_devices_and_deep_nesting(tmp_path):
    from mdcrl.errors import UnsafeFileError
    from mdcrl.io import read_json, sha256_file
    from mdcrl.rundir import probe_checkpoint

    (tmp_path / "zero").symlink_to("/dev/zero")
    for reader in (read_json, sha256_file, probe_checkpoint):
        with pytest.raises(UnsafeFileError, match="not a regular file"):
            reader(tmp_path / "zero")
    (tmp_path / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        read_json(tmp_path / "deep.json")


@pytest.mark.parametrize(
    "extra, message",
    [
        # 8 features mixed from 4 latents: 4 directions with variance once whitened
        (["model.z_dim=6", "model.z_dim_invariant=2"], "cannot make more latents than its input has: the data has 4 directions"),
        (["model.z_dim=9", "model.z_dim_invariant=2"], "the data has 8 features"),
        (["model.z_dim=4", "model.z_dim_invariant=2", "datamodule.latent_columns=[domain]"], "lists the domain column"),
    ],
)
def test_inconsistent_own_data_is_refused_in_one_line(tmp_path, extra, message):
    path = own_table(tmp_path / "data.csv", latents=False)
    with pytest.raises((ConfigError, DataInputError), match=message):
        run(from_file(path, *extra), run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_stage1_metadata_that_disagrees_with_its_arrays_is_refused(stage1_run, tmp_path):
    import shutil

    copy = tmp_path / "stage1"
    shutil.copytree(stage1_run, copy)
    meta_path = copy / "encoded" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["z_hat_dim"] = 99
    meta_path.write_text(json.dumps(meta))
    cfg = compose_config(
        QUIET + ["datamodule=mixing_encoded", "model=mixing_md_encoded_autoencoder", f"run_path={copy}"], tiny=False
    )
    with pytest.raises(EncodedDataError, match="z_hat_dim=99 but the arrays have"):
        run(cfg, run_dir=tmp_path / "stage2")


@pytest.mark.parametrize(
    "override, words",
    [
        ("model.penalty_criterion.minmax=0", "every penalty weight in model.penalty_criterion is 0"),
        ("datamodule.dataset.corr_prob=0.5", "corr_prob=0.5 is ignored"),
        ("+foo=1", "no code reads foo"),
        ("datamodule.batch_size=16", "holds about 4.0 rows of each of the 4 domains"),
    ],
)
def test_settings_that_do_nothing_are_warned_in_one_line(compose, override, words, caplog):
    from mdcrl.validation import validate_config

    with caplog.at_level("WARNING", logger="mdcrl.validation"):
        validate_config(compose([override]))
    assert [r.getMessage() for r in caplog.records if words in r.getMessage()]


def test_batch_without_two_domains_is_refused(compose):
    from mdcrl.validation import validate_config

    with pytest.raises(ConfigError, match="datamodule.batch_size=2 cannot hold two domains"):
        validate_config(compose(["datamodule.batch_size=2"]))
