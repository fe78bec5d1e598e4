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
from safetensors.torch import load_file, save_file

from mdcrl.data.tables import DataInputError, arrays_to_data, check_arrays, finite_matrix
from mdcrl.metrics import invariance_diagnostics
from mdcrl.models.autoencoders import build_autoencoder
from mdcrl.penalties import PENALTY_NAMES

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
ENCODERS = {"linear": "linear_ae", "mlp": "mlp_ae"}


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
            raise RuntimeError("this InvariantAutoencoder is not fitted yet; call fit(X, domains) first.")

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
        return self.autoencoder_.encode(self._prepare(X)).numpy()

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
        (path / "estimator.json").write_text(json.dumps(state, indent=2, default=str))
        save_file({k: v.contiguous() for k, v in self.autoencoder_.state_dict().items()}, str(path / "weights.safetensors"))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "InvariantAutoencoder":
        path = Path(path)
        state = json.loads((path / "estimator.json").read_text())
        est = cls(**state["params"])
        est.x_mean_ = np.asarray(state["x_mean"], dtype=np.float32)
        est.x_std_ = np.asarray(state["x_std"], dtype=np.float32)
        est.domain_labels_, est.metrics_, est.autoencoder_config_ = state["domain_labels"], state["metrics"], state["autoencoder"]
        weights = load_file(str(path / "weights.safetensors"))
        whitened = "input_map" in weights
        input_dim = weights["input_map"].shape[1] if whitened else len(est.x_mean_)
        ae = build_autoencoder(OmegaConf.create(state["autoencoder"]), input_dim, est.params["z_dim"], state.get("restarts", 1))
        if whitened:
            ae.set_whitening(weights["input_mean"], weights["input_map"])
        ae.load_state_dict(weights)
        est.autoencoder_ = ae.eval()
        return est
