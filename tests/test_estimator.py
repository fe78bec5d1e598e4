"""The estimator API and the data-file entry point (datamodule=from_file)."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from omegaconf import OmegaConf

from mdcrl import InvariantAutoencoder
from mdcrl.data.mixing import generate_mixing_data
from mdcrl.data.tables import DataInputError


@pytest.fixture(scope="module")
def dataset():
    cfg = OmegaConf.load(ROOT / "configs" / "datamodule" / "mixing.yaml").dataset
    cfg.num_samples = {"train": 10000, "valid": 400, "test": 400}
    return generate_mixing_data(cfg, seed=0).splits["train"]


def small(**kw):
    return InvariantAutoencoder(**{"z_dim": 8, "z_dim_stable": 4, "random_state": 0, **kw})


@pytest.fixture(scope="module")
def fitted(dataset):
    est = small(max_epochs=300)
    est.fit(dataset.x, dataset.domain, z=dataset.z, z_dim_stable_true=4)
    return est


def test_fit_recovers_the_stable_block(fitted, dataset):
    assert fitted.metrics_["r2_zinv_from_hinv"] >= 0.95
    assert fitted.metrics_["r2_zsp_from_hinv"] <= 0.05
    assert fitted.transform(dataset.x).shape == (len(dataset.x), 8)
    assert np.array_equal(fitted.stable_latents(dataset.x), fitted.transform(dataset.x)[:, :4])
    diag = fitted.diagnostics(dataset.x, dataset.domain)
    assert diag["recon_mse"] < 0.01 and diag["recon_mse_features"] < 0.01
    assert diag["stable_min_spread"] < diag["spurious_min_spread"] / 4
    assert diag["domain_acc_stable"] < diag["domain_acc_chance"] + 0.1
    assert diag["verdict"] == "invariant"


def test_diagnostics_recon_mse_is_the_objectives_term(fitted, dataset):
    """diagnostics' recon_mse is what the objective (and metrics_["recon_mse"]) measures: the
    model's input units; recon_mse_features the same reconstruction in feature units."""
    import torch

    from mdcrl.evaluation import split_losses

    x = torch.from_numpy((dataset.x - fitted.x_mean_) / fitted.x_std_)
    split = type(dataset)(x.numpy(), np.zeros((len(x), 0), np.float32), dataset.domain)
    losses = split_losses(fitted._module_for(4), split, 1024)
    diag = fitted.diagnostics(dataset.x, dataset.domain)
    assert diag["recon_mse"] == pytest.approx(float(losses["recon_mse"][fitted.autoencoder_.chosen]), rel=1e-4, abs=1e-9)


def test_stable_latents_by_index_equal_the_stable_block_first(dataset):
    """fit(z=..., stable=[...]) with z's columns shuffled gives the metrics of the stable-first z."""
    rows = slice(0, None, 4)
    x, d, z = dataset.x[rows], dataset.domain[rows], dataset.z[rows]
    order = [5, 0, 7, 2, 4, 1, 6, 3]  # the stable z0-z3 sit at positions 1, 5, 3, 7
    first = small(max_epochs=3).fit(x, d, z=z, z_dim_stable_true=4).metrics_
    shuffled = small(max_epochs=3).fit(x, d, z=z[:, order], stable=[1, 5, 3, 7]).metrics_
    for key in ("r2_zinv_from_hinv", "r2_zsp_from_hinv", "r2_hinv_from_zinv"):
        assert shuffled[key] == pytest.approx(first[key], abs=1e-12)


@pytest.mark.parametrize(
    "stable, expected",
    [
        ([0, 8], r"stable has indices \[8\] outside the 8 latent columns"),
        ([1, 1], "lists a latent twice"),
        ([], "non-empty list"),
        (["z0"], "latent column indices"),
    ],
)
def test_bad_stable_indices_are_refused(dataset, stable, expected):
    with pytest.raises(DataInputError, match=expected):
        small(max_epochs=1).fit(dataset.x[::12], dataset.domain[::12], z=dataset.z[::12], stable=stable)


def test_stable_indices_disagreeing_with_the_count_are_refused(dataset):
    with pytest.raises(DataInputError, match="z_dim_stable_true=3 disagrees with stable"):
        small(max_epochs=1).fit(dataset.x[::12], dataset.domain[::12], z=dataset.z[::12], stable=[0, 1], z_dim_stable_true=3)


def test_save_load_gives_identical_transform(fitted, dataset, tmp_path):
    fitted.save(tmp_path / "model")
    assert {p.name for p in (tmp_path / "model").iterdir()} == {"estimator.json", "weights.safetensors"}
    again = InvariantAutoencoder.load(tmp_path / "model")
    assert np.array_equal(again.transform(dataset.x), fitted.transform(dataset.x))


@pytest.mark.parametrize("suffix", ["npz", "csv", "parquet"])
def test_file_entry_point_matches_estimator(dataset, tmp_path, suffix):
    rows = slice(0, None, 6)  # splits are stored domain by domain: a stride keeps all 4 domains
    x, d, z = dataset.x[rows], dataset.domain[rows], dataset.z[rows]
    path = tmp_path / f"data.{suffix}"
    if suffix == "npz":
        np.savez(path, x=x, domain=d, z=z)
        latent = "[]"
    else:
        frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
        frame["site"] = np.array(["a", "b", "c", "d"])[d]  # string domain labels are fine
        for i in range(z.shape[1]):
            frame[f"z{i}"] = z[:, i]
        frame.to_csv(path, index=False) if suffix == "csv" else frame.to_parquet(path)
        latent = "[" + ",".join(f"z{i}" for i in range(z.shape[1])) + "]"
    column = "domain" if suffix == "npz" else "site"
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable,
        "run_training.py",
        "datamodule=from_file",
        f"datamodule.path={path}",
        f"datamodule.domain_column={column}",
        f"datamodule.latent_columns={latent}",
        # csv: the stable latents by name; the others: the first 4 latents are the stable ones
        "datamodule.stable_latent_columns=[z0,z1,z2,z3]" if suffix == "csv" else "datamodule.z_dim_invariant_true=4",
        "datamodule.batch_size=1024",
        "model.z_dim=8",
        "model.z_dim_invariant=4",
        "trainer.max_epochs=5",
        "seed=0",
        "nonlinear_probe=true",
        "trainer.enable_progress_bar=false",
        "~callbacks.visualization_callback",
        f"hydra.run.dir={run_dir}",
    ]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    from_file = json.loads((run_dir / "metrics.json").read_text())
    est = small(max_epochs=5).fit(x, d, z=z, z_dim_stable_true=4)
    assert from_file["r2_zinv_from_hinv"] == pytest.approx(est.metrics_["r2_zinv_from_hinv"], abs=1e-6)
    assert from_file["recon_mse"] == pytest.approx(est.metrics_["recon_mse"], abs=1e-6)
    assert from_file["diagnostics"] == pytest.approx(est.metrics_["diagnostics"], abs=1e-6)


def test_bad_arrays_are_rejected_before_any_work(dataset, tmp_path):
    x, d = dataset.x[:400].copy(), dataset.domain[:400]
    nan_x = x.copy()
    nan_x[3, 2] = np.nan
    cases = [
        (dict(X=nan_x, domains=d), "NaN/inf values (first at row 3, column 2)"),
        (dict(X=x, domains=d[:-1]), "X has 400 rows but domains has shape (399,)"),
        (dict(X=x, domains=np.zeros(400)), "one domain"),
        (dict(X=x, domains=np.r_[np.zeros(397), np.ones(3)]), "fewer than 5 samples"),
        (dict(X=x.astype(str).astype(object) + "a", domains=d), "X must be numeric"),
    ]
    for kwargs, message in cases:
        with pytest.raises(DataInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            small(max_epochs=1).fit(kwargs["X"], kwargs["domains"], run_dir=tmp_path / "run")
        assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="z_dim_stable=8 must be between 1 and z_dim - 1"):
        InvariantAutoencoder(z_dim=8, z_dim_stable=8).fit(x, d)


def test_bad_files_are_rejected_with_the_problem_named(tmp_path):
    from mdcrl.data.tables import read_table

    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"], "domain": [0, 1]})
    frame.to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(DataInputError, match=r"non-numeric feature columns \['b'\]"):
        read_table(tmp_path / "text.csv")
    with pytest.raises(DataInputError, match="no domain column 'site'"):
        read_table(tmp_path / "text.csv", domain_column="site")
    (tmp_path / "bad.parquet").write_bytes(b"not a parquet file")
    with pytest.raises(DataInputError, match="could not be read"):
        read_table(tmp_path / "bad.parquet")
    with pytest.raises(DataInputError, match="does not exist"):
        read_table(tmp_path / "missing.npz")


def test_score_is_minus_the_objective_and_prefers_the_trained_model(fitted, dataset):
    trained = fitted.score(dataset.x, dataset.domain)
    rows = slice(0, None, 5)  # splits are stored domain by domain: a stride keeps all domains
    barely = small(max_epochs=1).fit(dataset.x[rows], dataset.domain[rows]).score(dataset.x, dataset.domain)
    assert isinstance(trained, float) and -0.05 < trained <= 0.0
    assert trained > barely


def test_estimator_works_with_scikit_learn_tools(dataset):
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    est = small(max_epochs=2, penalties={"minmax": 1.0, "mmd": 0.5})
    assert clone(est).get_params() == est.get_params()
    assert est.set_params(lr=0.02).lr == 0.02
    x, d = dataset.x[::8], dataset.domain[::8]  # 1250 rows of every domain
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    pipe = make_pipeline(StandardScaler(), est).fit(frame, d)
    assert pipe.transform(frame).shape == (1250, 8)
    named = small(max_epochs=2).fit(frame, d)
    assert list(named.feature_names_in_) == list(frame.columns) and named.n_features_in_ == 16


def test_stable_latent_columns_by_name_on_the_command_line(tmp_path):
    """datamodule.stable_latent_columns (names among latent_columns, or indices) orders z stable
    first; a name that is not a latent column, or a count that disagrees, is refused by name."""
    from mdcrl.builders import stable_latents_first

    z = np.arange(12.0).reshape(3, 4)
    source = OmegaConf.create(
        {"path": "f.csv", "latent_columns": ["a", "b", "c", "d"], "stable_latent_columns": ["c", 0], "z_dim_invariant_true": None}
    )
    ordered, count = stable_latents_first(source, z)
    assert count == 2 and np.array_equal(ordered, z[:, [2, 0, 1, 3]])
    source.stable_latent_columns = ["e"]
    with pytest.raises(DataInputError, match=r"datamodule.stable_latent_columns names 'e', which is not among"):
        stable_latents_first(source, z)
    source.stable_latent_columns, source.z_dim_invariant_true = ["a"], 2
    with pytest.raises(DataInputError, match="datamodule.z_dim_invariant_true=2 disagrees with datamodule.stable_latent_columns"):
        stable_latents_first(source, z)


def test_python_names_on_the_command_line_get_one_line_naming_the_key():
    result = subprocess.run(
        [sys.executable, "run_training.py", "model.z_dim_stable=4"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: model.z_dim_stable is the estimator's (Python) name; on the command line the setting is "
        "model.z_dim_invariant=<value> (docs/tutorial_own_data.md, 'Names')."
    ]
