"""Balls images: renderer, sampler, cache, bad settings, and the seed's two commands."""

import json
import math
import shlex
import subprocess

import numpy as np
import pytest
import torch
from conftest import ROOT, compose_config, seed_commands
from omegaconf import OmegaConf

from mdcrl.data.balls import (
    BALL_COLOURS,
    BallsDataError,
    box_side_for_exact_invariance,
    generate_balls_data,
    render,
    sample_ball_latents,
)
from mdcrl.train import run
from mdcrl.validation import ConfigError

STAGE1, STAGE2 = [c for c in seed_commands() if "balls" in c]


def balls_cfg(**kw):
    ds = OmegaConf.load(ROOT / "configs" / "datamodule" / "md_balls.yaml").dataset
    ds.num_samples = {"train": 800, "valid": 160, "test": 160}
    ds.num_domains = 4
    ds.update(kw)
    return ds


def test_ball_centre_has_its_colour_and_disc_area_matches_radius():
    centres = np.array([[[0.3, 0.3], [0.7, 0.6]]])
    images, masks = render(centres, 0.1, 64, with_masks=True)
    for b, (x, y) in enumerate(centres[0]):
        pixel = images[0, :, int(y * 64), int(x * 64)]
        assert np.abs(pixel / 255 - BALL_COLOURS[b]).max() < 0.01
        assert masks[0, b].sum() == pytest.approx(math.pi * 6.4**2, rel=0.03)
    assert np.all(images[0, :, 0, 0] == 255)  # white background
    # anti-aliased: some edge pixels are between the ball colour and white
    red = images[0, 0].astype(int)
    assert ((red > 40) & (red < 240)).sum() > 10


def test_sampler_keeps_balls_apart_in_their_boxes_with_shared_invariant_range():
    ds = balls_cfg(num_samples={"train": 4000, "valid": 160, "test": 160})
    data = generate_balls_data(ds, seed=0)
    z, d = data.splits["train"].z, data.splits["train"].domain
    r = ds.ball_size
    inv, sp = z[:, :2], z[:, 2:]
    assert np.all(np.linalg.norm(inv - sp, axis=1) >= 2 * r - 1e-6)
    boxes = np.array(data.metadata["domain_boxes"])
    assert np.all(sp >= boxes[d, :1] + r - 1e-6) and np.all(sp <= boxes[d, 1:] - r + 1e-6)
    lo, hi = np.array(ds.invariant_low) + r, np.array(ds.invariant_high) - r
    for domain in range(4):
        block = inv[d == domain]
        assert np.all(block >= lo - 1e-6) and np.all(block <= hi + 1e-6)
        # the same range in every domain: each domain spans nearly all of it
        assert np.all(block.min(0) < lo + 0.05) and np.all(block.max(0) > hi - 0.05)
    assert data.splits["train"].x.shape == (4000, 3, 64, 64) and data.splits["train"].x.dtype == np.uint8


@pytest.mark.parametrize("redraw", ["all", "spurious"])
def test_overlap_redraw_spurious_keeps_the_invariant_ball_distributed_alike_in_every_domain(redraw):
    # domain 0's spurious box sits in the middle of the invariant range, domain 1's in a corner: the
    # share of invariant centres in the middle square is then lower in domain 0 when every ball of
    # an overlapping sample is redrawn, and the same in both when only the spurious ball is (the box
    # is wide enough that a spurious ball always fits beside the invariant one).
    ds = balls_cfg(invariant_low=[0.1, 0.1], invariant_high=[0.9, 0.9], overlap_redraw=redraw)
    boxes = np.array([[0.35, 0.75], [0.0, 0.25]])
    domain = np.repeat([0, 1], 20000)
    z = sample_ball_latents(np.random.default_rng(0), domain, ds, boxes)
    inv, sp = z[:, :2], z[:, 2:]
    assert np.all(np.linalg.norm(inv - sp, axis=1) >= 2 * ds.ball_size - 1e-6)
    in_middle = np.all((inv > 0.45) & (inv < 0.65), axis=1)
    share = [in_middle[domain == k].mean() for k in (0, 1)]
    expected = (0.2 / 0.64) ** 2  # the square's share of the invariant centres' range
    assert share[1] == pytest.approx(expected, rel=0.1)
    if redraw == "spurious":
        assert share[0] == pytest.approx(expected, rel=0.1)
    else:
        assert share[0] < 0.5 * expected


@pytest.mark.parametrize("side_factor", [1.02, 0.8])
def test_boxes_wider_than_the_exact_side_keep_the_invariant_ball_exactly_invariant(side_factor):
    # overlap_redraw=spurious with a box centred in the middle square: a box just wider than
    # box_side_for_exact_invariance always leaves the spurious ball room, so no invariant centre is
    # redrawn; a narrower one is covered when the invariant ball sits near its centre, and those rows
    # are redrawn whole, which empties the middle square in that domain.
    ds = balls_cfg(invariant_low=[0.1, 0.1], invariant_high=[0.9, 0.9], overlap_redraw="spurious")
    side = side_factor * box_side_for_exact_invariance(ds.ball_size)
    boxes = np.array([[0.55 - side / 2, 0.55 + side / 2], [0.0, 0.25]])
    domain = np.repeat([0, 1], 20000)
    inv = sample_ball_latents(np.random.default_rng(0), domain, ds, boxes)[:, :2]
    in_middle = np.all((inv > 0.45) & (inv < 0.65), axis=1)
    share = [in_middle[domain == k].mean() for k in (0, 1)]
    if side_factor > 1:
        assert share[0] == pytest.approx(share[1], rel=0.1)
    else:
        assert share[0] < 0.85 * share[1]


def test_dynamic_scm_shifts_spurious_balls_and_stays_valid():
    ds = balls_cfg(correlated_z=True, corr_prob=1.0, num_samples={"train": 2000, "valid": 160, "test": 160})
    z = generate_balls_data(ds, seed=1).splits["train"].z
    assert np.all((z >= ds.ball_size - 1e-6) & (z <= 1 - ds.ball_size + 1e-6))
    assert np.all(np.linalg.norm(z[:, :2] - z[:, 2:], axis=1) >= 2 * ds.ball_size - 1e-6)
    assert np.corrcoef(z[:, 0], z[:, 2])[0, 1] > 0.05  # the spurious ball now depends on the invariant one


def _balls_run_cfg(tmp_path, *extra):
    return compose_config(
        [
            "datamodule=md_balls",
            "model=balls",
            "model.autoencoder.base_width=8",
            "model.z_dim=16",
            "datamodule.dataset.num_domains=4",
            "datamodule.dataset.num_samples.train=240",
            "datamodule.dataset.num_samples.valid=80",
            "datamodule.dataset.num_samples.test=80",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            "print_metrics=false",
            "nonlinear_probe=false",
            "~callbacks.visualization_callback",
            f"datamodule.data_dir={tmp_path / 'cache'}",
            *extra,
        ],
        tiny=False,
    )


def test_cache_round_trip_and_refusals(tmp_path):
    run(_balls_run_cfg(tmp_path, "datamodule.save_dataset=True"), run_dir=tmp_path / "a")
    settings = (tmp_path / "cache" / "settings.json").read_text()
    m = run(_balls_run_cfg(tmp_path, "datamodule.load_dataset=True"), run_dir=tmp_path / "b")
    assert (tmp_path / "b" / "metrics.json").exists() and math.isfinite(m["recon_mse"])
    with pytest.raises(BallsDataError, match=r"made with other settings \(\['ball_size'\]\)"):
        run(_balls_run_cfg(tmp_path, "datamodule.load_dataset=True", "datamodule.dataset.ball_size=0.07"), run_dir=tmp_path / "c")
    with pytest.raises(BallsDataError, match="nothing was overwritten"):
        run(_balls_run_cfg(tmp_path, "datamodule.save_dataset=True", "datamodule.dataset.ball_size=0.07"), run_dir=tmp_path / "d")
    assert (tmp_path / "cache" / "settings.json").read_text() == settings
    blob = (tmp_path / "cache" / "test.npz").read_bytes()
    (tmp_path / "cache" / "test.npz").write_bytes(blob[:-100])
    with pytest.raises(BallsDataError, match="test.npz is missing or corrupt"):
        run(_balls_run_cfg(tmp_path, "datamodule.load_dataset=True"), run_dir=tmp_path / "e")
    assert not (tmp_path / "c").exists() and not (tmp_path / "e").exists()


@pytest.mark.parametrize(
    "override,message",
    [
        ("datamodule.dataset.invariant_low=[0.9,0.5]", "must be below invariant_high"),
        ("datamodule.dataset.ball_size=0.5", "ball_size=0.5 must be in (0, 0.5)"),
        ("datamodule.dataset.ball_size=0", "ball_size=0 must be in (0, 0.5)"),
        ("datamodule.dataset.domain_box_size=[0.1,0.3]", "spurious boxes are too small"),
        ("datamodule.dataset.invariant_high=[0.2,0.2]", "too small to hold 1 balls"),
        ("datamodule.dataset.image_size=48", "image_size=48 must be a power of two"),
        ("datamodule.dataset.overlap_redraw=both", "overlap_redraw='both' must be one of ['all', 'spurious']"),
    ],
)
def test_bad_balls_settings(tmp_path, override, message):
    with pytest.raises(ConfigError) as err:
        run(_balls_run_cfg(tmp_path, override), run_dir=tmp_path / "run")
    assert message in str(err.value)
    assert not (tmp_path / "run").exists()


def test_seed_balls_gpu_command_fails_at_once_naming_cpu(tmp_path):
    result = subprocess.run(
        ["bash", "-c", STAGE1 + f" hydra.run.dir={tmp_path / 'r'}"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    assert "trainer.accelerator=cpu" in result.stderr
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_seed_balls_commands_run_verbatim_shrunk_on_cpu(tmp_path):
    shrink = (
        " trainer.accelerator=cpu model.autoencoder.base_width=8 datamodule.dataset.num_samples.train=320"
        " datamodule.dataset.num_samples.valid=160 datamodule.dataset.num_samples.test=160 trainer.max_epochs=1"
        f" nonlinear_probe=false trainer.enable_progress_bar=false datamodule.data_dir={tmp_path / 'cache'}"
    )
    s1 = tmp_path / "s1"
    result = subprocess.run(
        ["bash", "-c", STAGE1 + shrink + f" hydra.run.dir={s1}"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (s1 / "encoded" / "metadata.json").exists() and (tmp_path / "cache" / "settings.json").exists()
    meta = json.loads((s1 / "encoded" / "metadata.json").read_text())
    assert meta["kind"] == "balls" and meta["z_hat_dim"] == 128 and meta["num_domains"] == 16
    assert 'run_path="path/to/run/"' in STAGE2
    second = STAGE2.replace("path/to/run/", str(s1))[: -len(" --multirun")]
    second += " seed=1235 trainer.max_epochs=2 nonlinear_probe=false trainer.enable_progress_bar=false"
    second += f" hydra.sweep.dir={tmp_path / 's2'} --multirun"
    result = subprocess.run(["bash", "-c", second], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = [p for p in (tmp_path / "s2").iterdir() if p.is_dir()]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert math.isfinite(metrics["r2_zinv_from_hinv"]) and metrics["domain_acc_h"] <= 1
    grid = subprocess.run(["mdcrl-balls-grid", str(s1), "--domains", "3"], capture_output=True, text=True, timeout=300)
    assert grid.returncode == 0, grid.stderr[-2000:]
    assert (s1 / "plots" / "balls_grid.png").stat().st_size > 1000


@pytest.mark.parametrize("size", [16, 32, 64])
def test_resnet_autoencoder_reconstructs_at_the_image_size(size):
    from mdcrl.models.resnet import resnet18_autoencoder

    model = resnet18_autoencoder(3, 8, base_width=4, head_dim=16, image_size=size).eval()
    h, recon = model(torch.zeros(2, 3, size, size))
    assert h.shape == (2, 8) and recon.shape == (2, 3, size, size)


def _seed_command_config(command: str) -> dict:
    """The config a seed README command composes to, without the hardware settings and the seed."""
    overrides = [o for o in shlex.split(command)[2:] if o != "--multirun"]
    cfg = compose_config(
        [o for o in overrides if not o.startswith(("trainer.accelerator", "trainer.devices", "seed="))], tiny=False
    )
    return _comparable(cfg)


def _comparable(cfg) -> dict:
    plain = OmegaConf.to_container(cfg, resolve=False)
    for key in ("accelerator", "devices"):
        plain["trainer"].pop(key, None)
    plain.pop("run_path", None)
    plain.pop("ckpt_path", None)
    plain["callbacks"] = {k: v for k, v in plain["callbacks"].items() if v is not None}  # null = removed (~)
    return plain


@pytest.mark.parametrize("stage,command", [(1, STAGE1), (2, STAGE2)])
def test_seed_presets_compose_to_the_seed_commands(stage, command):
    preset = _comparable(compose_config([f"experiment=balls_seed_stage{stage}", "run_path=x"], tiny=False))
    assert preset == _seed_command_config(command)


def test_cpu_presets_run_both_stages_and_stage_two_finds_stage_one_by_run_path(tmp_path):
    shrink = [
        "datamodule.dataset.num_samples.train=320",
        "datamodule.dataset.num_samples.valid=160",
        "datamodule.dataset.num_samples.test=160",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "print_metrics=false",
    ]
    cfg = compose_config(["experiment=balls_cpu_stage1", *shrink], tiny=False)
    assert cfg.datamodule.dataset.image_size == 32 and cfg.model.autoencoder.base_width == 8
    assert cfg.callbacks.early_stopping is None
    run(cfg, run_dir=tmp_path / "s1")
    meta = json.loads((tmp_path / "s1" / "encoded" / "metadata.json").read_text())
    assert meta["z_hat_dim"] == 64 and meta["num_domains"] == 16
    cfg2 = compose_config(["experiment=balls_cpu_stage2", f"run_path={tmp_path / 's1'}", *shrink[3:]], tiny=False)
    metrics = run(cfg2, run_dir=tmp_path / "s2")
    assert math.isfinite(metrics["r2_zinv_from_hinv"])
    info = json.loads((tmp_path / "s2" / "run.json").read_text())
    assert info["data"]["z_dim_stable"] == 2 and (tmp_path / "s2" / "plots" / "latents.png").exists()
