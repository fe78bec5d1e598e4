"""Polynomial two-stage pipeline: stage 1 saves encodings, stage 2 trains on them (docs/design.md, Two stages)."""

import hashlib
import json
import subprocess

import pytest
from conftest import QUIET, ROOT, compose_config, seed_commands

from mdcrl.data.encoded import EncodedDataError
from mdcrl.train import run
from mdcrl.validation import ConfigError

STAGE1, STAGE2 = [c for c in seed_commands() if "poly" in c]
# The small case a new user tries first (docs/polynomial.md): every other setting at its default,
# the spurious boxes inside the default [-5, 5], where z_S explains ~3% of x's variance.
SMALL_POLY = [
    "model/autoencoder=poly_ae",
    "model.penalty_criterion.minmax=0.",
    "datamodule.dataset.linear=False",
    "datamodule.dataset.polynomial_degree=2",
    "datamodule.dataset.z_dim=4",
    "datamodule.dataset.x_dim=24",
    "datamodule.dataset.num_domains=8",
    "model.save_encoded_data=True",
]


def tree_digest(path):
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("stage1")
    metrics = run(compose_config(QUIET + SMALL_POLY + ["seed=1235"], tiny=False), run_dir=run_dir)
    return run_dir, metrics


def stage2(run_path, run_dir, minmax):
    cfg = compose_config(
        QUIET
        + [
            "model=mixing_md_encoded_autoencoder",
            "datamodule=mixing_encoded",
            f"run_path={run_path}",
            f"model.penalty_criterion.minmax={minmax}",
            "seed=1235",
        ],
        tiny=False,
    )
    return run(cfg, run_dir=run_dir)


def test_stage1_reconstructs_and_saves_encodings(stage1):
    run_dir, metrics = stage1
    assert metrics["recon_mse"] < 1e-3  # x is standardised: 0.1% of its variance
    assert metrics["r2_z_from_h"] >= 0.99  # the encoder is affine in z, up to 1%
    meta = json.loads((run_dir / "encoded" / "metadata.json").read_text())
    assert meta["num_domains"] == 8 and meta["z_dim_invariant_true"] == 2 and meta["z_hat_dim"] == 4
    assert {p.name for p in (run_dir / "encoded").iterdir()} == {
        "metadata.json",
        "train.safetensors",
        "valid.safetensors",
        "test.safetensors",
    }


def test_stage2_minmax_separates_and_never_touches_stage1(stage1, tmp_path):
    run_path, _ = stage1
    before = tree_digest(run_path)
    with_penalty = stage2(run_path, tmp_path / "minmax", 1.0)
    without = stage2(run_path, tmp_path / "none", 0.0)
    assert tree_digest(run_path) == before
    assert with_penalty["r2_zinv_from_hinv"] >= 0.95
    assert with_penalty["r2_zsp_from_hinv"] <= 0.02
    # the no-penalty control starts at random (no moment warm start) and nothing in its objective
    # rotates z_U out of h_S: in this 4-dim orthonormal frame it keeps a random share of z_U
    assert json.loads((tmp_path / "none" / "run.json").read_text())["init_used"] == "random"
    assert without["r2_zsp_from_hinv"] >= with_penalty["r2_zsp_from_hinv"] + 0.1


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_stage2_rejects_bad_run_paths(stage1, tmp_path):
    run_path, _ = stage1
    cases = {}
    cases["missing"] = (tmp_path / "nope", "does not exist")
    plain = tmp_path / "plain"
    run(compose_config(["seed=3"]), run_dir=plain)  # a finished linear run, no encodings
    cases["not stage 1"] = (plain, "is not a stage-1 run")
    interrupted = _copy(run_path, tmp_path / "interrupted")
    (interrupted / "encoded" / "metadata.json").unlink()
    (interrupted / "run.json").write_text(json.dumps({"status": "running"}))
    cases["incomplete"] = (interrupted, "is incomplete")
    other = _copy(run_path, tmp_path / "other")
    meta = json.loads((other / "encoded" / "metadata.json").read_text())
    (other / "encoded" / "metadata.json").write_text(json.dumps({**meta, "kind": "balls"}))
    cases["other dataset"] = (other, "holds encodings of a 'balls' dataset")
    corrupt = _copy(run_path, tmp_path / "corrupt")
    data = (corrupt / "encoded" / "train.safetensors").read_bytes()
    (corrupt / "encoded" / "train.safetensors").write_bytes(data[: len(data) // 2])
    cases["corrupt"] = (corrupt, "train.safetensors is corrupt")
    for name, (path, message) in cases.items():
        out = tmp_path / f"out-{name}"
        with pytest.raises(EncodedDataError, match=message) as err:
            stage2(path, out, 1.0)
        assert str(path) in str(err.value), name
        assert not out.exists(), name


def test_stage2_without_run_path_and_degree_zero_are_config_errors(tmp_path):
    cfg = compose_config(["model=mixing_md_encoded_autoencoder", "datamodule=mixing_encoded"], tiny=False)
    with pytest.raises(ConfigError, match="needs run_path="):
        run(cfg, run_dir=tmp_path / "a")
    cfg = compose_config(["datamodule.dataset.linear=False", "datamodule.dataset.polynomial_degree=0"])
    with pytest.raises(ConfigError, match="polynomial_degree=0 must be >= 1"):
        run(cfg, run_dir=tmp_path / "b")


SHRINK = (
    " datamodule.dataset.z_dim=4 datamodule.dataset.x_dim=20 datamodule.dataset.num_domains=4"
    " datamodule.dataset.num_samples.train=800 datamodule.dataset.num_samples.valid=200"
    " datamodule.dataset.num_samples.test=200 trainer.max_epochs=3 nonlinear_probe=false trainer.enable_progress_bar=false"
)


def test_seed_polynomial_commands_run_verbatim(tmp_path):
    s1 = tmp_path / "s1"
    first = STAGE1 + SHRINK + f" hydra.run.dir={s1}"
    result = subprocess.run(["bash", "-c", first], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (s1 / "encoded" / "metadata.json").exists()
    assert "'path/to/above/run/'" in STAGE2 and STAGE2.endswith(" --multirun")
    second = STAGE2.replace("path/to/above/run/", str(s1))[: -len(" --multirun")]
    second += " seed=1235 trainer.max_epochs=3 nonlinear_probe=false trainer.enable_progress_bar=false"
    second += f" hydra.sweep.dir={tmp_path / 's2'} --multirun"
    result = subprocess.run(["bash", "-c", second], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = [p for p in (tmp_path / "s2").iterdir() if p.is_dir()]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished" and info["tags"] == ["poly-uniform", "minmax", "p3"]
