"""A scikit-learn style estimator over the same training machinery as run_training.py.

    est = InvariantAutoencoder(z_dim=4, z_dim_invariant=2, penalties={"minmax": 1.0})
    est.fit(X, domains)
    stable = est.stable_latents(X)      # the learned stable block
    est.score(X, domains)               # diagnostics that need no ground truth

``fit`` composes the packaged Hydra config (datamodule=from_file, model=mixing_synthetic) with
overrides from the constructor's arguments and calls :func:`mdcrl.train.fit_run` on the arrays,
so that the CLI and the estimator train identically for the same data and seed.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from sklearn.exceptions import NotFittedError

from mdcrl.data.tables import DataInputError, arrays_to_data, check_arrays, finite_matrix
from mdcrl.errors import SavedModelError
from mdcrl.io import sha256_file, write_text_atomic
from mdcrl.metrics import invariance_diagnostics
from mdcrl.models.autoencoders import build_autoencoder
from mdcrl.penalties import PENALTY_NAMES

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
ENCODERS = {"linear": "linear_ae", "mlp": "mlp_ae"}
ENCODER_NAMES = ("linear", "mlp")  # model.autoencoder.name of those configs


class InvariantAutoencoder:
    def __init__(
        self,
        z_dim: int,
        z_dim_invariant: int,
        penalties: dict | None = None,
        encoder: str = "linear",
        penalty_weight: float = 1.0,
        top_k: int = 5,
        mmd_fix_sigma: float | None = None,
        hinge_loss_weight: float = 0.0,
        lr: float | None = None,
        max_epochs: int = 300,
        batch_size: int = 1024,
        valid_fraction: float = 0.1,
        test_fraction: float = 0.0,
        standardize: bool = True,
        seed: int = 0,
        verbose: bool = False,
    ):
        self.params = {k: v for k, v in locals().items() if k != "self"}
        self.params["penalties"] = dict(penalties if penalties is not None else {"minmax": 1.0})
        for name in ("z_dim", "z_dim_invariant", "top_k", "max_epochs", "batch_size", "seed"):
            value = self.params[name]
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{name}={value!r} must be an integer.")
        unknown = sorted(set(self.params["penalties"]) - set(PENALTY_NAMES))
        if unknown:
            raise ValueError(f"unknown penalties {unknown}; known: {list(PENALTY_NAMES)}.")
        if encoder not in ENCODERS:
            raise ValueError(f"encoder={encoder!r} must be one of {sorted(ENCODERS)}.")
        if not 1 <= z_dim_invariant < z_dim:
            raise ValueError(f"z_dim_invariant={z_dim_invariant} must be between 1 and z_dim - 1 = {z_dim - 1}.")
        self.autoencoder_ = None
        self.metrics_: dict | None = None

    # -- configuration -----------------------------------------------------------------------
    def _overrides(self) -> list[str]:
        p = self.params
        out = [
            "datamodule=from_file", "datamodule.path=in-memory-arrays", f"datamodule.batch_size={p['batch_size']}",
            f"datamodule.valid_fraction={p['valid_fraction']}", f"datamodule.test_fraction={p['test_fraction']}",
            f"datamodule.standardize={p['standardize']}", f"model/autoencoder={ENCODERS[p['encoder']]}",
            f"model.z_dim={p['z_dim']}", f"model.z_dim_invariant={p['z_dim_invariant']}",
            f"model.penalty_weight={p['penalty_weight']}", f"model.minmax_loss.top_k={p['top_k']}",
            f"model.mmd_loss.fix_sigma={'null' if p['mmd_fix_sigma'] is None else p['mmd_fix_sigma']}",
            f"model.hinge_loss_weight={p['hinge_loss_weight']}", f"trainer.max_epochs={p['max_epochs']}",
            f"trainer.enable_progress_bar={p['verbose']}", f"seed={p['seed']}", "print_metrics=false",
            "~callbacks.visualization_callback",
        ]
        out += [f"model.penalty_criterion.{name}={float(p['penalties'].get(name, 0.0))}" for name in PENALTY_NAMES]
        if p["lr"] is not None:
            out.append(f"model.optimizer.lr={p['lr']}")
        return out

    def config(self):
        """The composed run config this estimator trains with."""
        from hydra import compose, initialize_config_dir

        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose("train", overrides=self._overrides())

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, X, domains, z=None, z_dim_invariant_true: int | None = None, run_dir: str | Path | None = None):
        """Train on X (n, p) with domain labels (n,). With ground-truth latents z (stable first) and
        z_dim_invariant_true, ``metrics_`` also holds the SPEC 5 regressions on the test split.
        ``run_dir`` keeps the run directory (checkpoints, curves); by default a temporary one is used."""
        from mdcrl.train import fit_run

        p = self.params
        data = arrays_to_data(
            X, domains, z, z_dim_invariant_true, p["valid_fraction"], p["test_fraction"], p["standardize"],
            p["seed"], min_per_domain=max(2, p["top_k"]),
        )
        cfg = self.config()
        with tempfile.TemporaryDirectory(prefix="mdcrl-") as tmp:
            module, self.metrics_ = fit_run(cfg, Path(run_dir or tmp), data=data)
        self.autoencoder_ = module.autoencoder.eval()
        self.autoencoder_config_ = OmegaConf.to_container(cfg.model.autoencoder, resolve=True)
        self.x_mean_ = np.asarray(data.metadata["x_mean"], dtype=np.float32)
        self.x_std_ = np.asarray(data.metadata["x_std"], dtype=np.float32)
        self.domain_labels_ = data.metadata["domain_labels"]
        return self

    def _check_fitted(self):
        if self.autoencoder_ is None:
            raise NotFittedError("this InvariantAutoencoder is not fitted yet; call fit(X, domains) first.")

    def _prepare(self, X) -> torch.Tensor:
        self._check_fitted()
        x = finite_matrix(X)
        if x.shape[1] != len(self.x_mean_):
            raise DataInputError(f"X has {x.shape[1]} features; this model was fitted on {len(self.x_mean_)}.")
        return torch.from_numpy((x - self.x_mean_) / self.x_std_)

    # -- inference ---------------------------------------------------------------------------
    @torch.no_grad()
    def transform(self, X) -> np.ndarray:
        """The learned latents (n, z_dim), stable block first."""
        x = self._prepare(X)
        return self.autoencoder_.encode(x).numpy()

    def stable_latents(self, X) -> np.ndarray:
        return self.transform(X)[:, : self.params["z_dim_invariant"]]

    @torch.no_grad()
    def score(self, X, domains) -> dict:
        """Diagnostics without ground truth: reconstruction MSE (standardised units), the per-domain
        min/max/variance spread of the stable and spurious blocks, and domain-probe accuracy on the
        stable block next to chance (low = the stable block carries little domain information)."""
        x = self._prepare(X)
        _, codes, _, _ = check_arrays(x.numpy(), domains, min_per_domain=1)
        h, x_hat = self.autoencoder_(x)
        out = {"reconstruction_mse": float(((x_hat - x) ** 2).mean())}
        out.update(invariance_diagnostics(h.numpy(), codes, self.params["z_dim_invariant"]))
        return out

    # -- persistence: JSON + safetensors, no pickled code ------------------------------------
    def save(self, path: str | Path) -> Path:
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {
            "params": self.params, "autoencoder": self.autoencoder_config_, "restarts": self.autoencoder_.restarts,
            "x_mean": self.x_mean_.tolist(),
            "x_std": self.x_std_.tolist(), "domain_labels": self.domain_labels_, "metrics": self.metrics_,
        }
        weights = path / "weights.safetensors"
        save_file({k: v.contiguous() for k, v in self.autoencoder_.state_dict().items()}, str(weights))
        state["weights_sha256"] = sha256_file(weights)
        write_text_atomic(path / "estimator.json", json.dumps(state, indent=2, default=str))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "InvariantAutoencoder":
        """Read a directory written by ``save``. Nothing in it is trusted: the JSON is checked field by
        field, the weights against their checksum and against the shapes the JSON's architecture
        implies (built on torch's meta device first, so a tampered size allocates nothing), and every
        number must be finite. Raises SavedModelError naming the file."""
        path = Path(path)
        meta_path, weights_path = path / "estimator.json", path / "weights.safetensors"
        try:
            state = json.loads(meta_path.read_text())
        except (OSError, ValueError) as err:
            raise SavedModelError(f"{meta_path} cannot be read ({err}); save the estimator again.") from err
        try:
            est = cls(**state["params"])
            x_mean = np.asarray(state["x_mean"], dtype=np.float32)
            x_std = np.asarray(state["x_std"], dtype=np.float32)
            restarts = int(state.get("restarts", 1))
            arch = OmegaConf.create(state["autoencoder"])
            if arch.get("name") not in ENCODER_NAMES or x_mean.shape != x_std.shape or x_mean.ndim != 1:
                raise ValueError("unknown architecture or mismatched x_mean/x_std")
        except (KeyError, TypeError, ValueError) as err:
            raise SavedModelError(f"{meta_path} is not a valid estimator file ({err}); save the estimator again.") from err
        if not (np.isfinite(x_mean).all() and np.isfinite(x_std).all() and (x_std > 0).all()):
            raise SavedModelError(f"{meta_path}: x_mean/x_std must be finite with x_std > 0; the file was edited or is corrupt.")
        if state.get("weights_sha256") != sha256_file(weights_path) if weights_path.is_file() else True:
            raise SavedModelError(f"{weights_path} is missing or does not match the checksum in {meta_path}; save the estimator again.")
        with safe_open(str(weights_path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        whitened = "input_map" in shapes
        input_dim = shapes["input_map"][1] if whitened else len(x_mean)
        with torch.device("meta"):  # shapes only: a tampered hidden size allocates nothing here
            expected = build_autoencoder(arch, input_dim, est.params["z_dim"], restarts)
        expected_shapes = {k: tuple(v.shape) for k, v in expected.state_dict().items()}
        if whitened:  # raw features -> whitened ones and back
            n_raw = len(x_mean)
            expected_shapes.update(input_mean=(n_raw,), input_map=(n_raw, input_dim), input_unmap=(input_dim, n_raw))
        if expected_shapes != shapes:
            raise SavedModelError(f"{meta_path} describes another architecture than the weights in {weights_path}; the files were edited.")
        weights = load_file(str(weights_path))
        bad = [k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise SavedModelError(f"{weights_path} holds NaN/inf values in {bad}; the file was edited or is corrupt.")
        ae = build_autoencoder(arch, input_dim, est.params["z_dim"], restarts)
        if whitened:
            ae.set_whitening(weights["input_mean"], weights["input_map"])
        ae.load_state_dict(weights)
        est.x_mean_, est.x_std_ = x_mean, x_std
        est.domain_labels_, est.metrics_, est.autoencoder_config_ = state.get("domain_labels"), state.get("metrics"), state["autoencoder"]
        est.autoencoder_ = ae.eval()
        return est
