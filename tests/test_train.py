import csv
import json
import math

import pytest
import torch
from conftest import QUIET, TINY_POLY, compose_config

from mdcrl.models.module import NonFiniteLossError
from mdcrl.train import run
from mdcrl.validation import ConfigError


def test_run_writes_directory_and_all_metrics(tmp_path, compose):
    cfg = compose(["logger.wandb.tags=[linear-uniform,minmax]", "nonlinear_probe=true"])
    metrics = run(cfg, run_dir=tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for key in [
        "r2_zinv_from_hinv",
        "r2_zsp_from_hinv",
        "r2_hinv_from_zinv",
        "r2_hinv_from_zsp",
        "r2_z_from_h",
        "oracle_r2_zsp_from_zinv",
        "domain_acc_hinv",
        "domain_acc_h",
        "recon_mse",
        "penalty",
        "mcc",
        "r2_zinv_from_hinv_nonlinear",
        "r2_zsp_from_hinv_nonlinear",
    ]:
        assert math.isfinite(saved[key]), key
    assert set(saved["r2_blocks_linear"]) == {"zinv_from_hinv", "zinv_from_hsp", "zsp_from_hinv", "zsp_from_hsp"}
    assert saved == json.loads(json.dumps(metrics))
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["status"] == "finished" and info["tags"] == ["linear-uniform", "minmax"]
    assert info["data"] == {"z_dim": 8, "z_dim_stable": 4, "num_domains": 4}  # the report reads stage 2's here
    assert (tmp_path / "config.yaml").exists()
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    # per-epoch validation curves in the CSV
    header = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"val/loss", "val/recon_mse", "val/minmax", "val/r2_zinv_from_hinv", "val/r2_zsp_from_hinv"} <= set(header)


def test_same_seed_same_metrics(tmp_path, compose):
    cfg = compose(["seed=77"])
    run(cfg, run_dir=tmp_path / "a")
    run(cfg, run_dir=tmp_path / "b")
    assert (tmp_path / "a" / "metrics.json").read_text() == (tmp_path / "b" / "metrics.json").read_text()


def test_step_batch_size_takes_the_steps_of_that_batch_size_whatever_the_loader_batch(tmp_path, compose):
    # The seed's polynomial stage-1 command passes datamodule.batch_size=1024; poly_ae's steps of 256
    # rows (model.optimizer.step_batch_size) must make that run the batch-256 run, step for step.
    # Held-out batches differ (1024 vs 256 rows): the selection score and metrics must not see it.
    common = [*TINY_POLY, "model.restarts=2"]
    split = run(compose([*common, "datamodule.batch_size=1024", "model.optimizer.step_batch_size=256"]), run_dir=tmp_path / "a")
    plain = run(compose([*common, "datamodule.batch_size=256"]), run_dir=tmp_path / "b")
    whole = run(compose([*common, "datamodule.batch_size=1024", "model.optimizer.step_batch_size=null"]), run_dir=tmp_path / "c")
    for key in ("r2_z_from_h", "r2_zinv_from_hinv", "recon_mse"):
        assert split[key] == pytest.approx(plain[key], rel=1e-5, abs=1e-7), key
    assert split["recon_mse"] != pytest.approx(whole["recon_mse"], rel=1e-3)  # 4x fewer steps: another run
    steps = [json.loads((tmp_path / d / "run.json").read_text())["optimizer_steps"] for d in "abc"]
    assert steps[0] == steps[1] > 2 * steps[2]


def test_restart_lr_scales_train_each_copy_at_its_own_learning_rate(tmp_path, compose):
    # Copy r of a run with model.optimizer.restart_lr_scales trains as copy r of a run at lr * scale[r]:
    # the per-copy validation scores (run.json) match, so the selection compares real runs at each rate.
    # No penalty: the score is the reconstruction, which falls every epoch, so all three runs report
    # their last epoch (run.json's scores are those of the best checkpoint).
    common = [*TINY_POLY, "model.restarts=2", "model.penalty_criterion.minmax=0."]
    spread = [*common, "model.optimizer.lr=0.004", "model.optimizer.restart_lr_scales=[1.0,0.25]"]
    plain = [*common, "model.optimizer.restart_lr_scales=null"]  # poly_ae's own spread off
    runs = {"spread": spread, "full": [*plain, "model.optimizer.lr=0.004"], "quarter": [*plain, "model.optimizer.lr=0.001"]}
    scores = {}
    for name, overrides in runs.items():
        run(compose(overrides), run_dir=tmp_path / name)
        scores[name] = json.loads((tmp_path / name / "run.json").read_text())["restart_selection_scores"]
    assert scores["spread"][0] == pytest.approx(scores["full"][0], rel=1e-4)
    assert scores["spread"][1] == pytest.approx(scores["quarter"][1], rel=1e-4)
    assert scores["spread"][1] != pytest.approx(scores["full"][1], rel=1e-2)  # the scale took effect


def _method_run(tmp_path, seed, minmax, z_dim=8, num_domains=4, extra=()):
    cfg = compose_config(
        [
            *QUIET,
            *extra,
            f"seed={seed}",
            f"model.penalty_criterion.minmax={minmax}",
            f"datamodule.dataset.z_dim={z_dim}",
            f"datamodule.dataset.num_domains={num_domains}",
        ],
        tiny=False,
    )
    return run(cfg, run_dir=tmp_path / f"{seed}-{minmax}")


# Full-length training runs: one seed of the default cell in every suite, the rest with --runslow.
@pytest.mark.parametrize("seed", [1235, pytest.param(4256, marks=pytest.mark.slow)])
def test_minmax_reaches_the_limit_in_the_default_cell(tmp_path, seed):
    # The defaults (configs/model/mixing_synthetic.yaml): whitened input, 4 restarts, Adam lr 0.01
    # with cosine decay over 300 epochs. The default cell (z_dim 8, 4 domains) is certified.
    m = _method_run(tmp_path, seed, 1.0)
    assert m["support_identifiable"] is True
    assert m["r2_zinv_from_hinv"] >= 0.995
    assert m["r2_zsp_from_hinv"] <= 0.005


@pytest.mark.slow
def test_minmax_reaches_the_limit_in_a_certified_cell_that_needs_restarts(tmp_path):
    # z_dim 16, 8 domains, seed 1235: single initialisations stop at r2_zinv 0.87-0.95 here; the
    # restart with the lowest val/selection reaches the limit.
    m = _method_run(tmp_path, 1235, 1.0, z_dim=16, num_domains=8)
    assert m["support_identifiable"] is True
    assert m["r2_zinv_from_hinv"] >= 0.99
    assert m["r2_zsp_from_hinv"] <= 0.01


def test_without_penalty_blocks_stay_mixed(tmp_path):
    # From random starts (the warm start of model.init=moment separates the blocks before training)
    m = _method_run(tmp_path, 1235, 0.0, extra=["model.init=random"])
    assert m["r2_zsp_from_hinv"] >= 0.25  # a random 4-dim subspace of the 8 whitened directions (penalised: <= 0.005)


def test_non_finite_loss_stops_with_error_and_keeps_checkpoint(tmp_path, compose):
    good = tmp_path / "good"
    run(compose(["trainer.max_epochs=2"]), run_dir=good)
    last = good / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    bad = tmp_path / "bad"
    # A penalty weight beyond float32 range makes the first resumed step's loss inf.
    cfg = compose(["trainer.max_epochs=4", "model.penalty_weight=1e39", f"ckpt_path={last}"])
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step \d+.*non-finite terms: \['loss'\]"):
        run(cfg, run_dir=bad)
    assert last.read_bytes() == before
    info = json.loads((bad / "run.json").read_text())
    assert info["status"] == "failed" and "NonFiniteLossError" in info["error"]
    assert not (bad / "metrics.json").exists()
    state = torch.load(last, weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values())


def test_early_stopping_waits_for_min_epochs_then_stops_a_run_that_no_longer_improves(tmp_path, compose):
    # min_delta 10 in log units: no epoch counts as an improvement, so the run stops as soon as
    # trainer.min_epochs allows (patience 2 ran out at epoch 2).
    stop = [
        "trainer.max_epochs=9",
        "trainer.min_epochs=5",
        "callbacks.early_stopping.patience=2",
        "callbacks.early_stopping.min_delta=10",
    ]
    run(compose(stop), run_dir=tmp_path)
    assert json.loads((tmp_path / "run.json").read_text())["epochs"] == 5


BAD_CONFIGS = [
    ("datamodule.dataset.z_dim_invariant=9", "datamodule.dataset.z_dim_invariant=9"),
    ("datamodule.dataset.z_dim_invariant=0", "datamodule.dataset.z_dim_invariant=0"),
    ("datamodule.dataset.num_domains=1", "datamodule.dataset.num_domains=1"),
    ("datamodule.dataset.num_samples.valid=10", "datamodule.dataset.num_samples.valid=10"),
    ("datamodule.dataset.x_dim=4", "datamodule.dataset.x_dim=4 < z_dim=8"),
    ("datamodule.dataset.domain_dist_ranges=[5,-5]", "datamodule.dataset.domain_dist_ranges"),
    ("model.penalty_weight=-1", "model.penalty_weight=-1"),
    ("model.penalty_criterion.mmd=-0.5", "model.penalty_criterion.mmd=-0.5"),
    ("model.minmax_loss.top_k=0", "model.minmax_loss.top_k=0"),
    ("+model.penalty_criterion.variance=1.0", "unknown penalties ['variance']"),
    ("model.minmax_loss.loss_transform=huber", "model.minmax_loss.loss_transform='huber'"),
    ("model.mmd_loss.fix_sigma=0", "model.mmd_loss.fix_sigma=0"),
    ("model.minmax_loss.null_corrected=1", "model.minmax_loss.null_corrected=1 must be true or false"),
    ("model.mmd_loss.unbiased=maybe", "model.mmd_loss.unbiased='maybe' must be true or false"),
    ("model.mmd_loss.unbiased=true model.mmd_loss.per_pair=true", "set model.mmd_loss.unbiased=false"),
    ("model/autoencoder=poly_ae model.autoencoder.activation=relu6", "model.autoencoder.activation='relu6' is unknown"),
    ("datamodule.dataset.corr_prob=1.5", "datamodule.dataset.corr_prob=1.5"),
    ("model.restart_selection_epochs=0", "model.restart_selection_epochs=0 must be an integer >= 1"),
    ("model.whiten_dims=0", "model.whiten_dims=0 must be an integer >= 1"),
    ("model.optimizer.step_batch_size=0", "model.optimizer.step_batch_size=0 must be >= 1"),
    (
        "datamodule.batch_size=256 model.optimizer.step_batch_size=512",
        "model.optimizer.step_batch_size=512 exceeds datamodule.batch_size=256",
    ),
    ("model.optimizer.step_batch_size=2", "model.optimizer.step_batch_size=2 cannot hold two domains"),
    ("model.restarts=2 model.optimizer.restart_lr_scales=[1,0.5,0.25]", "at most one learning-rate factor per restart"),
    ("model.restarts=2 model.optimizer.restart_lr_scales=[1,-0.5]", "restart_lr_scales=[1, -0.5] must be finite numbers > 0"),
    # types and finiteness: refused by name, never truncated (8.5 -> 8) or passed on as NaN/inf
    ("datamodule.dataset.z_dim=abc", "datamodule.dataset.z_dim='abc' must be a whole number"),
    ("seed=abc", "seed='abc' must be a whole number"),
    ("datamodule.dataset.domain_dist_ranges=abc", "datamodule.dataset.domain_dist_ranges=abc must be two finite numbers"),
    ("datamodule.dataset.invariant_dist_params=[0,inf]", "invariant_dist_params=[0,inf] must be two finite numbers"),
    ("datamodule.dataset.num_samples.train=10**10", "num_samples.train='10**10' must be a whole number"),
    ("model.penalty_weight=inf", "model.penalty_weight=inf must be a finite number"),
    ("model.optimizer.lr=nan", "model.optimizer.lr=nan must be a finite number"),
    ("datamodule.dataset.z_dim=8.5", "datamodule.dataset.z_dim=8.5 must be a whole number"),
    ("datamodule.dataset.num_domains=2.7", "datamodule.dataset.num_domains=2.7 must be a whole number"),
    ("model.z_dim=8.5", "model.z_dim=8.5 must be a whole number"),
    ("trainer.max_epochs=2.5", "trainer.max_epochs=2.5 must be a whole number"),
    ("datamodule.dataset.num_samples.train=10000000000", "check_memory=false"),
    # hardening, second round (docs/hardening.md)
    ("datamodule.dataset.num_samples=400", "datamodule.dataset.num_samples=400 must be a group of settings"),
    ("num_threads=-1", "num_threads=-1 must be >= 1"),
    ("trainer.accelerator=tpu", "trainer.accelerator='tpu' is not one mdcrl runs on"),
    ("datamodule.dataset.z_dim=100000", "generating the data needs about"),  # the mixing matrix alone: 149 GiB
    ("model.restarts=1000000", "model.restarts (or the model's size"),  # the copies' activations
]


@pytest.mark.parametrize("override,message", BAD_CONFIGS)
def test_bad_config_fails_before_any_work(tmp_path, compose, override, message):
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError) as err:
        run(compose(override.split()), run_dir=run_dir)
    assert message in str(err.value)
    assert not run_dir.exists()


def test_run_path_symlink_loop_is_one_line(tmp_path):
    (tmp_path / "loop-a").symlink_to(tmp_path / "loop-b")
    (tmp_path / "loop-b").symlink_to(tmp_path / "loop-a")
    cfg = compose_config(
        [*QUIET, "datamodule=mixing_encoded", "model=mixing_md_encoded_autoencoder", f"run_path={tmp_path / 'loop-a'}"],
        tiny=False,
    )
    with pytest.raises(ConfigError, match="cannot be followed"):
        run(cfg, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_gpu_accelerator_without_gpu_names_the_cpu_fix(tmp_path, compose):
    with pytest.raises(ConfigError, match="trainer.accelerator=cpu"):
        run(compose(["trainer.accelerator=gpu"]), run_dir=tmp_path / "run")


def test_fixed_bandwidth_far_too_small_warns(tmp_path, compose):
    cfg = compose(["model.penalty_criterion.mmd=1.0", "model.mmd_loss.fix_sigma=0.001", "trainer.max_epochs=1"])
    with pytest.warns(UserWarning, match="model.mmd_loss.fix_sigma=null"):
        run(cfg, run_dir=tmp_path)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/evil.ckpt", "https://example.org/model.ckpt", "s3://bucket/x.ckpt"])
def test_remote_checkpoint_is_refused_before_any_work(tmp_path, compose, url):
    with pytest.raises(ConfigError, match="is a URL; only local checkpoint files"):
        run(compose([f"ckpt_path={url}"]), run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_missing_checkpoint_file_is_refused(tmp_path, compose):
    with pytest.raises(ConfigError, match="is not a file"):
        run(compose([f"ckpt_path={tmp_path / 'nope.ckpt'}"]), run_dir=tmp_path / "run")


def test_every_restarts_validation_score_is_logged_per_epoch(tmp_path, compose):
    # metrics.csv keeps each copy's val/selection, so a user can see when the restarts separate; the
    # kept copy's is val/selection.
    run(compose(["model.restarts=3", "model.init=random", "trainer.max_epochs=2", "trainer.min_epochs=1"]), run_dir=tmp_path)
    rows = list(csv.DictReader(next(tmp_path.rglob("metrics.csv")).open()))
    val = [r for r in rows if r.get("val/selection")]
    assert len(val) == 2
    for r in val:
        copies = [float(r[f"val/selection_restart{c}"]) for c in range(3)]
        assert float(r["val/selection"]) == pytest.approx(min(copies), rel=1e-6)
