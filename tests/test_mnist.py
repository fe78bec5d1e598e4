"""Coloured digits: the digit sources (embedded, idx, npz), the generator, the cache, the published
code's three commands and the CPU presets."""

import gzip
import json
import math
import shlex
import subprocess
import sys

import numpy as np
import pytest
from conftest import QUIET, ROOT, compose_config
from omegaconf import OmegaConf

from mdcrl.data.mnist import (
    CORNER,
    DIGIT_THRESHOLD,
    build_mnist_data,
    colourise,
    generate_mnist_data,
    read_digit_source,
    sample_colours,
    shift_images,
)
from mdcrl.errors import ConfigError, MnistDataError
from mdcrl.train import run

# The published code's three commands (issue 23), their cluster paths replaced by placeholders.
MNIST_DATA = (
    "python run_training.py trainer.accelerator='gpu' trainer.devices=\"auto\" ckpt_path=null model.optimizer.lr=0.001 "
    "datamodule=mnist datamodule/dataset=md_mnist datamodule.dataset.num_domains=16 "
    'datamodule.dataset.spurious_method="digits" datamodule.dataset.correlated_z=True datamodule.dataset.corr_prob=0.8 '
    "model=mnist_md_autoencoder model.z_dim=128 model/autoencoder=resnet18_ae_mnist ~callbacks.early_stopping "
    "datamodule.save_dataset=True datamodule.load_dataset=False model.save_encoded_data=True"
)
MNIST_STAGE1 = (
    "python run_training.py trainer.accelerator='gpu' trainer.devices=\"auto\" ckpt_path=null model.optimizer.lr=0.001 "
    "datamodule=mnist datamodule/dataset=md_mnist datamodule.dataset.num_domains=16 model=mnist_md_autoencoder "
    "model.z_dim=128 model/autoencoder=mlp_ae_mnist "
    'logger.wandb.tags=["mnist-stage-1","digits-mlp","16-domains","corr"] ~callbacks.early_stopping '
    'datamodule.save_dataset=False datamodule.load_dataset=True datamodule.data_dir="DATA_RUN" '
    "model.save_encoded_data=True trainer.max_epochs=100"
)
MNIST_STAGE2 = (
    "python run_training.py trainer.accelerator='cpu' trainer.devices=\"auto\" ckpt_path=null model.optimizer.lr=0.001 "
    "datamodule=mnist_encoded datamodule.batch_size=1024 datamodule.dataset.normalize=True "
    "model=mnist_md_encoded_autoencoder model/autoencoder=mlp_ae model.z_dim=128 model.z_dim_invariant_fraction=0.5 "
    "model.hinge_loss_weight=0.0 model.penalty_criterion.mmd=1. model.penalty_criterion.minmax=1. "
    'logger.wandb.tags=["mnist","16-domains","corr","digits-mlp","minmax-mmd"] ~callbacks.early_stopping '
    '~callbacks.visualization_callback run_path="STAGE1_RUN" trainer.min_epochs=1 trainer.max_epochs=3 '
    "trainer.val_check_interval=0.02 seed=1235,4256,49685,7383,9271 --multirun"
)


def mnist_ds(**kw):
    ds = OmegaConf.load(ROOT / "configs" / "datamodule" / "dataset" / "md_mnist.yaml")
    ds.num_samples = {"train": 600, "valid": 160, "test": 160}
    ds.num_domains = 4
    ds.image_size = 16
    ds.update(kw)
    return ds


def write_idx(path, array, gz=False):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    raw = header + array.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def tiny_mnist(directory, n=60, side=28, gz=False):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(directory / f"train-images-idx3-ubyte{suffix}", images, gz)
    write_idx(directory / f"train-labels-idx1-ubyte{suffix}", labels, gz)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_idx_reader_reads_mnist_as_distributed(tmp_path, gz):
    images, labels = tiny_mnist(tmp_path, gz=gz)
    got_images, got_labels, source = read_digit_source(tmp_path)
    assert np.array_equal(got_images, images) and np.array_equal(got_labels, labels)
    assert source["name"] == "file" and len(source["sha256"]) == 2 and source["images"] == 60


def test_npz_source_and_the_embedded_default():
    images, labels, source = read_digit_source(None)
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8 and set(labels) == set(range(10))
    assert source["name"] == "sklearn-digits"


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda d: (d / "train-images-idx3-ubyte").write_bytes(b"\x08\x03\x00\x00junk"), "bad magic number"),
        (lambda d: None, "holds no MNIST files"),
        (lambda d: np.savez(d / "x.npz", images=np.zeros((30, 8, 8), np.uint8), labels=np.full(30, 12)), "digits 0-9"),
        (lambda d: np.savez(d / "x.npz", images=np.zeros((30, 8, 6), np.float32), labels=np.zeros(30, int)), "uint8"),
        (lambda d: np.savez(d / "x.npz", pictures=np.zeros((30, 8, 8), np.uint8)), "must hold arrays 'images'"),
    ],
)
def test_a_malformed_source_is_refused_naming_the_setting(tmp_path, make, message):
    make(tmp_path)
    if (tmp_path / "train-images-idx3-ubyte").exists():
        write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3))
    target = tmp_path / "x.npz" if (tmp_path / "x.npz").exists() else tmp_path
    with pytest.raises(MnistDataError, match=message) as err:
        read_digit_source(target)
    assert "datamodule.dataset.path" in str(err.value)


def test_idx_size_mismatch_is_refused(tmp_path):
    tiny_mnist(tmp_path)
    raw = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(raw[:-10])
    with pytest.raises(MnistDataError, match="its header says shape"):
        read_digit_source(tmp_path)


def test_colours_lie_in_their_domains_ranges_and_the_dynamic_scm_ties_them_to_the_digit():
    rng = np.random.default_rng(0)
    ranges = np.array([[[0.0, 1.0]] * 3, [[0.2, 0.4]] * 3])
    domain = np.repeat([0, 1], 5000)
    digits = rng.integers(0, 10, size=10000)
    free = sample_colours(rng, domain, digits, ranges, correlated=False, corr_prob=0.0)
    assert free[domain == 1].min() >= 0.2 and free[domain == 1].max() <= 0.4
    tied = sample_colours(rng, domain, digits, ranges, correlated=True, corr_prob=1.0)
    high = digits >= 5
    assert tied[high & (domain == 0)].min() >= 0.5 and tied[~high & (domain == 0)].max() <= 0.5
    half = sample_colours(rng, domain, digits, ranges, correlated=True, corr_prob=0.5)
    share_low = (half[high & (domain == 0), 0] < 0.5).mean()
    assert share_low == pytest.approx(0.25, abs=0.03)  # half of them free, half of those below the middle


def test_the_colour_r2_of_an_ideal_stable_block_is_zero_only_without_the_dynamic_scm():
    # oracle_color_r2_from_digit: the colour R^2 of an h_S that holds the digit and nothing else
    from mdcrl.metrics import digit_colour_metrics

    rng = np.random.default_rng(0)
    ranges = np.tile([0.0, 1.0], (4, 3, 1))
    domain, digits = rng.integers(0, 4, size=6000), rng.integers(0, 10, size=6000)
    references = []
    for correlated in (False, True):
        z = np.column_stack([digits, sample_colours(rng, domain, digits, ranges, correlated=correlated, corr_prob=0.8)])
        h = np.column_stack([np.eye(10)[digits], rng.normal(size=(6000, 2))])  # h_S: the digit alone
        out = digit_colour_metrics(h[:4000], z[:4000], domain[:4000], h[4000:], z[4000:], domain[4000:], h_dim_stable=10)
        assert out["color_r2_from_hinv"] == pytest.approx(out["oracle_color_r2_from_digit"], abs=1e-9)
        references.append(out["oracle_color_r2_from_digit"])
    # full ranges, p = 0.8: each channel's mean moves by +-0.2 with the digit group, R^2 = 0.04 / (1/12)
    assert abs(references[0]) < 0.01 and references[1] == pytest.approx(0.48, abs=0.05)


@pytest.mark.parametrize("method", ["digits", "background", "fixed_corner", "random_corner"])
def test_each_placement_colours_its_part_of_the_image(method):
    rng = np.random.default_rng(1)
    grey = np.zeros((6, 16, 16), dtype=np.float32)
    grey[:, 5:11, 5:11] = 0.9  # the digit, away from the corners
    colours = rng.uniform(0.2, 0.8, size=(6, 3))
    rgb = colourise(grey, colours, method, rng).astype(float) / 255
    digit, bg = grey > DIGIT_THRESHOLD, grey <= DIGIT_THRESHOLD
    for i in range(6):
        if method == "digits":
            assert np.allclose(rgb[i][:, digit[i]], 0.9 * colours[i][:, None], atol=1 / 255)
            assert np.all(rgb[i][:, bg[i]] == 0)
        elif method == "background":
            assert np.allclose(rgb[i][:, bg[i]], colours[i][:, None], atol=1 / 255)
            assert np.allclose(rgb[i][:, digit[i]], 0.9, atol=1 / 255)
        else:
            coloured = np.isclose(rgb[i], colours[i][:, None, None], atol=1 / 255).all(axis=0)
            assert coloured.sum() == CORNER * CORNER
            if method == "fixed_corner":
                assert coloured[:CORNER, :CORNER].all()


def test_shifts_move_each_image_by_its_own_offset():
    grey = np.zeros((2, 8, 8), dtype=np.float32)
    grey[:, 3, 3] = 1
    moved = shift_images(grey, np.array([1, -2]), np.array([0, 2]))
    assert moved[0, 4, 3] == 1 and moved[1, 1, 5] == 1 and moved.sum() == 2


def test_generated_digits_are_held_out_balanced_and_cached(tmp_path, caplog):
    ds = mnist_ds(correlated_z=True, corr_prob=0.8)
    data = generate_mnist_data(ds, seed=3)
    train, test = data.splits["train"], data.splits["test"]
    assert train.x.shape == (600, 3, 16, 16) and train.x.dtype == np.uint8 and train.z.shape == (600, 4)
    assert data.z_dim_stable_true == 1 and data.metadata["kind"] == "mnist"
    assert np.bincount(train.domain).tolist() == [150] * 4
    # no test image is a train image (the base digits are split before any copy is made)
    train_set = {img.tobytes() for img in train.x.max(axis=1)}
    assert not any(img.tobytes() in train_set for img in test.x.max(axis=1))
    again = generate_mnist_data(ds, seed=3)
    assert np.array_equal(again.splits["test"].x, test.x)
    source = OmegaConf.create({"dataset": ds, "save_dataset": True, "load_dataset": False, "data_dir": None})
    built = build_mnist_data(source, seed=3, run_dir=tmp_path / "run")
    assert (tmp_path / "run" / "dataset" / "settings.json").exists()
    # the seed's second command loads the first's data without repeating its dataset options
    given = OmegaConf.create(
        {"dataset": mnist_ds(), "load_dataset": True, "save_dataset": False, "data_dir": str(tmp_path / "run")}
    )
    loaded = build_mnist_data(given, seed=3)
    assert np.array_equal(loaded.splits["train"].x, built.splits["train"].x)
    assert "corr_prob=0.8 (given 0.0)" in caplog.text
    (tmp_path / "run" / "dataset" / "test.npz").write_bytes(b"garbage")
    with pytest.raises(MnistDataError, match="missing or corrupt"):
        build_mnist_data(given, seed=3)


@pytest.mark.parametrize(
    "override,message",
    [
        ("datamodule.dataset.spurious_method=hat", "spurious_method='hat' is unknown"),
        ("datamodule.dataset.corr_prob=1.5", "corr_prob=1.5 must be a probability"),
        ("datamodule.dataset.path=/no/such/mnist", "path=/no/such/mnist does not exist"),
        ("datamodule.load_dataset=true", "needs datamodule.data_dir"),
        ("datamodule.dataset.num_domains=1", "num_domains=1 must be >= 2"),
    ],
)
def test_bad_mnist_settings_get_one_clear_error(tmp_path, override, message):
    from mdcrl.validation import validate_config

    with pytest.raises(ConfigError, match=message):
        validate_config(compose_config(["experiment=mnist_cpu_stage1", override], tiny=False))


def _comparable(cfg) -> dict:
    plain = OmegaConf.to_container(cfg, resolve=False)
    for key in ("accelerator", "devices"):
        plain["trainer"].pop(key, None)
    for key in ("run_path", "ckpt_path", "seed"):
        plain.pop(key, None)
    plain["datamodule"].pop("data_dir", None)
    plain["callbacks"] = {k: v for k, v in plain["callbacks"].items() if v is not None}
    return plain


@pytest.mark.parametrize(
    "preset,command",
    [("mnist_seed_data", MNIST_DATA), ("mnist_seed_stage1", MNIST_STAGE1), ("mnist_seed_stage2", MNIST_STAGE2)],
)
def test_seed_presets_compose_to_the_published_commands(preset, command):
    overrides = [
        o
        for o in shlex.split(command)[2:]
        if o != "--multirun" and not o.startswith(("trainer.accelerator", "trainer.devices", "seed="))
    ]
    assert _comparable(compose_config([f"experiment={preset}"], tiny=False)) == _comparable(compose_config(overrides, tiny=False))


def test_the_gpu_command_fails_in_one_line_on_a_cpu_machine():
    result = subprocess.run(["bash", "-c", MNIST_DATA], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "trainer.accelerator=cpu" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_three_commands_run_on_cpu_from_data_to_stage_two(tmp_path):
    """The published commands as written (GPU -> cpu, tiny sizes and budgets appended)."""
    small = " ".join(
        ["", *(f"datamodule.dataset.num_samples.{k}={n}" for k, n in (("train", 400), ("valid", 160), ("test", 160)))]
    )
    quiet = " " + " ".join(QUIET)
    first = (
        MNIST_DATA.replace("'gpu'", "'cpu'")
        + small
        + " trainer.max_epochs=1 model.autoencoder.base_width=4 model.autoencoder.head_dim=16"
    )
    first += f" model.z_dim=16{quiet} hydra.run.dir={tmp_path / 'data'}"
    second = MNIST_STAGE1.replace("'gpu'", "'cpu'").replace("DATA_RUN", str(tmp_path / "data"))
    second += f" trainer.max_epochs=2 model.z_dim=16{quiet} hydra.run.dir={tmp_path / 's1'}"
    third = MNIST_STAGE2.replace("STAGE1_RUN", str(tmp_path / "s1")).replace("seed=1235,4256,49685,7383,9271", "seed=1235")
    third = (
        third[: -len(" --multirun")]
        + f" model.z_dim=16 trainer.max_epochs=1 {' '.join(QUIET[:3])} hydra.sweep.dir={tmp_path / 's2'} --multirun"
    )
    for command in (first, second, third):
        result = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    first_run = json.loads((tmp_path / "data" / "run.json").read_text())
    assert first_run["data"]["source"]["name"] == "sklearn-digits"
    second_cfg = OmegaConf.load(tmp_path / "s1" / "config.yaml")
    assert second_cfg.datamodule.dataset.corr_prob == 0.0  # as given; the data is the first run's (corr_prob 0.8)
    (run_dir,) = [p for p in (tmp_path / "s2").iterdir() if p.is_dir()]
    assert json.loads((run_dir / "run.json").read_text())["data"]["source"]["name"] == "sklearn-digits"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("digit_acc_from_hinv", "digit_acc_from_hsp", "color_r2_from_hinv", "color_r2_from_hsp", "domain_acc_hinv"):
        assert math.isfinite(metrics[key]), key
    # validated every 2% of an epoch: more validations than epochs
    curves = (run_dir / "csv" / "metrics.csv").read_text().splitlines()
    assert sum(1 for line in curves[1:] if line.split(",")[0]) > 1


def test_cpu_presets_run_both_stages_and_stage_two_keeps_the_digit(tmp_path):
    shrink = [
        "datamodule.dataset.num_samples.train=1200",
        "datamodule.dataset.num_samples.valid=300",
        "datamodule.dataset.num_samples.test=300",
        *QUIET,
    ]
    metrics1 = run(
        compose_config(["experiment=mnist_cpu_stage1", "trainer.max_epochs=8", *shrink], tiny=False), run_dir=tmp_path / "s1"
    )
    assert metrics1["digit_acc_from_h"] > 0.5 and metrics1["color_r2_from_h"] > 0.5  # stage 1 keeps both
    assert (tmp_path / "s1" / "dataset" / "settings.json").exists()
    metrics2 = run(
        compose_config(
            ["experiment=mnist_cpu_stage2", f"run_path={tmp_path / 's1'}", "trainer.max_epochs=10", *QUIET[:3]], tiny=False
        ),
        run_dir=tmp_path / "s2",
    )
    assert metrics2["color_r2_from_hinv"] < metrics2["color_r2_from_hsp"]  # the colour leaves h_S
    reference = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "mnist_colour_reference.py"), str(tmp_path / "s1")],
        capture_output=True,
        text=True,
    )
    assert reference.returncode == 0, reference.stderr[-2000:]
    # the script reads stage 1's encodings; the run recorded the same value (independent SCM: about 0)
    oracle = metrics2["oracle_color_r2_from_digit"]
    assert f"| {oracle:.4f} |" in reference.stdout and abs(oracle) < 0.05
    grid = subprocess.run(
        ["mdcrl-balls-grid", str(tmp_path / "s1"), "--domains", "2"], capture_output=True, text=True, timeout=300
    )
    assert grid.returncode == 0, grid.stderr[-2000:]
