"""InvariantAutoencoder: the training core (mdcrl.train.fit_run) as a scikit-learn transformer."""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from mdcrl.data.base import Split
from mdcrl.data.tables import check_arrays, finite_matrix
from mdcrl.errors import SavedModelError
from mdcrl.evaluation import split_losses
from mdcrl.io import read_json, sha256_file, write_text_atomic
from mdcrl.metrics import stability_diagnostics
from mdcrl.models.autoencoders import build_autoencoder
from mdcrl.models.base import fit_whitening, non_finite_entries
from mdcrl.models.module import MultiDomainAutoencoder
from mdcrl.settings import INITS, PENALTY_NAMES, DataSettings, RunSettings, default_settings

ENCODERS = {"linear": "linear_ae", "mlp": "mlp_ae"}  # encoder -> configs/model/autoencoder/<name>.yaml
ENCODER_NAMES = ("linear", "mlp")  # model.autoencoder.name of those configs


class InvariantAutoencoder(TransformerMixin, BaseEstimator):
    """Autoencoder whose first latents are trained to be stable across domains.

    Trains exactly as ``run_training.py datamodule=from_file`` does (same core, same packaged
    defaults, same splits for the same data and seed), on arrays.

    The domain labels go where scikit-learn puts ``y``: ``fit(X, domains)`` (the parameter is named
    ``y``, as scikit-learn's tools pass it by that name). They are not a target to predict but the
    grouping the invariance penalties compare; ``fit_transform``, ``Pipeline`` and ``GridSearchCV``
    pass them along as they pass any ``y``.

    Parameters
    ----------
    z_dim : int or None, default=None
        Number of learned latents. None: the number of features (for the linear encoder on whitened
        features: the number of directions with variance, if that is fewer).
    z_dim_stable : int or None, default=None
        How many of them (the leading ones) are penalised to be stable across domains.
        None: ``z_dim // 2``.
    penalties : dict or None, default=None
        Weight of each invariance penalty by name (``"minmax"``, ``"mmd"``, ``"stddev"``, ``"domain_means"``,
        ``"domain_covariances"``); missing names are off. None: the packaged default (min-max only).
    encoder : {"linear", "mlp"}, default="linear"
        The autoencoder (configs/model/autoencoder/linear_ae.yaml or mlp_ae.yaml).
    penalty_weight : float or None, default=None
        Multiplies the weighted penalties. None: the packaged default.
    top_k : int or None, default=None
        How many extreme values per domain the min-max penalty compares. None: the packaged default.
    mmd_fix_sigma : float, "mean-distance" or None, default=None
        Fixed MMD bandwidth; "mean-distance": the batch's mean pairwise squared distance.
        None: the packaged default.
    hinge_loss_weight : float or None, default=None
        Weight of the hinge that keeps stable latents from collapsing. None: the packaged default.
    lr : float or None, default=None
        Adam's learning rate. None: the encoder's packaged default.
    max_epochs : int or None, default=None
        Training epochs (early stopping may end sooner). None: the packaged default.
    batch_size : int or None, default=None
        Minibatch size. None: the packaged default.
    valid_fraction, test_fraction : float or None, default=None
        Per-domain fractions held out for model selection and for ``metrics_``. None: the
        packaged defaults (configs/datamodule/from_file.yaml).
    standardize : bool or None, default=None
        Standardise features with training statistics. None: the packaged default.
    restarts : int or None, default=None
        Copies trained at once; the one with the best validation selection score is kept.
        None: the packaged default.
    init : {"moment", "random"} or None, default=None
        "moment": one copy starts at the closed-form moment estimate of the stable subspace
        (mdcrl.moment; linear encoder only) and that untrained start competes in the selection;
        "random": the paper's initialisation. None: the encoder's packaged default (moment for
        "linear", random for "mlp").
    random_state : int, RandomState or None, default=None
        Seed of the splits, the initialisation and the batches. An int gives the same run as
        ``seed=<int>`` on the command line.
    verbose : bool, default=False
        Show Lightning's progress bar.

    Attributes
    ----------
    autoencoder_ : mdcrl.models.base.Autoencoder
        The trained autoencoder (best validation checkpoint).
    settings_ : mdcrl.settings.RunSettings
        The settings it was trained with.
    metrics_ : dict
        The run's held-out metrics (with ground-truth latents, the regressions of the README).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X was a DataFrame with string column names.
    domain_labels_ : list
        The domain labels seen in fit, in code order.
    x_mean_, x_std_ : ndarray
        The standardisation of the features.
    """

    def __init__(
        self,
        z_dim=None,
        z_dim_stable=None,
        penalties=None,
        encoder="linear",
        penalty_weight=None,
        top_k=None,
        mmd_fix_sigma=None,
        hinge_loss_weight=None,
        lr=None,
        max_epochs=None,
        batch_size=None,
        valid_fraction=None,
        test_fraction=None,
        standardize=None,
        restarts=None,
        init=None,
        random_state=None,
        verbose=False,
    ):
        self.z_dim = z_dim
        self.z_dim_stable = z_dim_stable
        self.penalties = penalties
        self.encoder = encoder
        self.penalty_weight = penalty_weight
        self.top_k = top_k
        self.mmd_fix_sigma = mmd_fix_sigma
        self.hinge_loss_weight = hinge_loss_weight
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.valid_fraction = valid_fraction
        self.test_fraction = test_fraction
        self.standardize = standardize
        self.restarts = restarts
        self.init = init
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True  # the domains
        tags.transformer_tags.preserves_dtype = ["float32"]  # the model computes in float32
        return tags

    # -- settings ------------------------------------------------------------------------------
    def _check_params(self, n_features: int) -> tuple[int, int]:
        for name in ("z_dim", "z_dim_stable", "top_k", "max_epochs", "batch_size", "restarts"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
                raise ValueError(f"{name}={value!r} must be a positive integer (or None for the default).")
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder={self.encoder!r} must be one of {sorted(ENCODERS)}.")
        if self.init not in (None, *INITS):
            raise ValueError(f"init={self.init!r} must be one of {list(INITS)} (or None for the encoder's default).")
        if self.init == "moment" and self.encoder != "linear":
            raise ValueError(f"init='moment' warm-starts the linear encoder only (encoder={self.encoder!r}): use init='random'.")
        unknown = sorted(set(self.penalties or {}) - set(PENALTY_NAMES))
        if unknown:
            raise ValueError(f"unknown penalties {unknown}; known: {list(PENALTY_NAMES)}.")
        z_dim = int(self.z_dim or n_features)
        if z_dim < 2:
            raise ValueError(
                f"z_dim={z_dim}: at least 2 latents are needed (one stable, one spurious); X has {n_features} feature(s)."
            )
        z_dim_stable = int(self.z_dim_stable or max(1, z_dim // 2))
        if not 1 <= z_dim_stable < z_dim:
            raise ValueError(f"z_dim_stable={z_dim_stable} must be between 1 and z_dim - 1 = {z_dim - 1}.")
        return z_dim, z_dim_stable

    def _settings(self, z_dim: int, z_dim_stable: int, seed: int) -> RunSettings:
        """The packaged defaults (datamodule=from_file, model=mixing_synthetic) with this estimator's
        parameters where they are not None."""
        base = default_settings("from_file", ENCODERS[self.encoder])
        given = lambda value, default: default if value is None else value  # noqa: E731
        p = base.penalties
        weights = p.weights if self.penalties is None else {n: float(self.penalties.get(n, 0.0)) for n in PENALTY_NAMES}
        sigma = (
            p.mmd.fix_sigma
            if self.mmd_fix_sigma is None
            else (None if self.mmd_fix_sigma == "mean-distance" else float(self.mmd_fix_sigma))
        )
        penalties = replace(
            p,
            weights=weights,
            scale=float(given(self.penalty_weight, p.scale)),
            minmax=replace(p.minmax, top_k=int(given(self.top_k, p.minmax.top_k))),
            mmd=replace(p.mmd, fix_sigma=sigma),
            hinge_weight=float(given(self.hinge_loss_weight, p.hinge_weight)),
        )
        source = base.data.source
        data = DataSettings(
            "arrays",
            int(given(self.batch_size, base.data.batch_size)),
            {
                "valid_fraction": float(given(self.valid_fraction, source["valid_fraction"])),
                "test_fraction": float(given(self.test_fraction, source["test_fraction"])),
                "standardize": bool(given(self.standardize, source["standardize"])),
            },
        )
        trainer = replace(
            base.trainer,
            max_epochs=int(given(self.max_epochs, base.trainer.max_epochs)),
            options={**base.trainer.options, "enable_progress_bar": bool(self.verbose)},
            callbacks={k: v for k, v in base.trainer.callbacks.items() if k != "visualization_callback"},
        )
        model = replace(
            base.model,
            z_dim=z_dim,
            z_dim_stable=z_dim_stable,
            restarts=int(given(self.restarts, base.model.restarts)),
            init=str(given(self.init, base.model.init)),
        )
        return replace(
            base,
            data=data,
            model=model,
            penalties=penalties,
            optim=replace(base.optim, lr=float(given(self.lr, base.optim.lr))),
            trainer=trainer,
            seed=seed,
            print_metrics=False,
        )

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, X, y, z=None, z_dim_stable_true=None, stable=None, run_dir=None):
        """Train on X (n_samples, n_features) with y the domain label of each row (any hashable
        labels: ints, strings).

        With ground-truth latents ``z`` (n_samples, n_latents), ``metrics_`` also holds the
        regressions of the true latents on the learned ones (test split). Which latents are stable:
        ``stable``, the indices of z's stable columns (e.g. ``stable=[0, 2, 5]``), or
        ``z_dim_stable_true``, when z's first that many columns are the stable ones.

        Expected cost on an idle 2-core CPU with the packaged defaults, 12,000 x 6 samples: about
        6-8 s with the linear encoder, about 23 s with the MLP encoder (``encoder="mlp"``;
        benchmarks/bench_estimator.py); a busy machine takes several times longer. ``verbose=True``
        shows the progress bar.
        ``run_dir`` keeps the run directory (checkpoints, curves); by default a temporary one is
        used. A finished run in ``run_dir`` with the same settings and data is reused, not retrained.
        """
        from mdcrl.builders import user_data
        from mdcrl.train import fit_run

        domains = y
        if domains is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None: pass the domain labels.")
        X = validate_data(self, X, reset=True, dtype=None, ensure_all_finite=False, ensure_min_samples=2)
        z_dim, z_dim_stable = self._check_params(self.n_features_in_)
        seed = (
            self.random_state
            if isinstance(self.random_state, (int, np.integer))
            else int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        )
        settings = self._settings(z_dim, z_dim_stable, int(seed))
        data = user_data(settings, X, domains, z, z_dim_stable_true, stable)
        if self.z_dim is None and settings.model.autoencoder["name"] == "linear" and settings.model.whiten:
            # z_dim=None: as many latents as the (whitened) features have directions with variance
            directions = fit_whitening(data.splits["train"].x)[1].shape[1]
            if directions < z_dim:
                z_dim, z_dim_stable = self._check_params(directions)
                settings = self._settings(z_dim, z_dim_stable, int(seed))
        with tempfile.TemporaryDirectory(prefix="mdcrl-") as tmp:
            module, self.metrics_ = fit_run(settings, Path(run_dir or tmp), data=data)
        self.autoencoder_ = module.autoencoder.eval()
        self.settings_ = settings
        self.x_mean_ = np.asarray(data.metadata["x_mean"], dtype=np.float32)
        self.x_std_ = np.asarray(data.metadata["x_std"], dtype=np.float32)
        self.domain_labels_ = data.metadata["domain_labels"]
        return self

    def _standardized(self, X) -> torch.Tensor:
        check_is_fitted(self, "autoencoder_")
        X = validate_data(self, X, reset=False, dtype=None, ensure_all_finite=False)
        return torch.from_numpy((finite_matrix(X) - self.x_mean_) / self.x_std_)

    # -- inference -----------------------------------------------------------------------------
    @torch.no_grad()
    def transform(self, X) -> np.ndarray:
        """The learned latents (n_samples, z_dim), stable block first."""
        x = self._standardized(X)  # first: it raises NotFittedError before a fit
        return self.autoencoder_.encode(x).numpy()

    def stable_latents(self, X) -> np.ndarray:
        """The stable block of ``transform(X)``."""
        return self.transform(X)[:, : self.settings_.model.z_dim_stable]

    def _module_for(self, num_domains: int) -> MultiDomainAutoencoder:
        s = self.settings_
        return MultiDomainAutoencoder(self.autoencoder_, num_domains, s.model.z_dim_stable, 0, s.penalties, s.optim)

    def score(self, X, y) -> float:
        """Minus the training objective on (X, y = domain labels): reconstruction MSE (in the model's
        input units, as ``metrics_["recon_mse"]``) plus the weighted invariance penalties of the
        stable block. Higher is better; a model that reconstructs well and whose stable block matches
        across domains scores near 0.

        What it cannot tell: whether the stable block is invariant in the sense that matters. The
        objective is what training minimised, so a poor solution (e.g. a nonlinear encoder that
        matches the domains' extremes while the domain still shows inside the support) also scores
        near 0. Read ``diagnostics(X, y)["verdict"]`` for that."""
        x = self._standardized(X)
        _, codes, _, labels = check_arrays(x.numpy(), y, min_per_domain=1)
        split = Split(x.numpy(), np.zeros((len(x), 0), np.float32), codes)
        losses = split_losses(self._module_for(len(labels)), split, self.settings_.data.batch_size)
        return -float(losses["loss"][self.autoencoder_.chosen])

    @torch.no_grad()
    def diagnostics(self, X, y) -> dict:
        """Diagnostics without ground truth, on (X, y = domain labels):

        - ``recon_mse``: the reconstruction error as the objective (and ``metrics_["recon_mse"]``)
          measures it, in the model's input units (whitened features when the model whitens);
          ``recon_mse_features``: the same reconstruction in standardised feature units;
        - ``stable_*_spread`` / ``spurious_*_spread``: how far each block's per-domain minimum,
          maximum and variance move across domains (mdcrl.metrics.stability_diagnostics);
        - ``domain_acc_stable`` next to ``domain_acc_chance``: a logistic probe telling the domain
          from the stable block;
        - ``verdict``: "invariant", or "not invariant: <reasons>" when one of those signals is past
          its threshold (mdcrl.metrics.invariance_verdict, documented in the tutorial). ``score``
          cannot tell this: a stable block that leaks the domain through its inside (not its
          extremes) can still score near 0 under min-max.
        """
        x = self._standardized(X)
        _, codes, _, _ = check_arrays(x.numpy(), y, min_per_domain=1)
        ae = self.autoencoder_
        h_all, x_hat_all, target = ae.forward_restarts(x)  # one pass; the chosen copy's view of it below
        h, x_hat = h_all[ae.chosen_position], x_hat_all[ae.chosen_position]
        out = {
            "recon_mse": float((x_hat - target).square().mean()),
            "recon_mse_features": float((ae.unprepare(x_hat) - x).square().mean()),
        }
        out.update(stability_diagnostics(h.numpy(), codes, self.settings_.model.z_dim_stable))
        if "warm_start" in self.metrics_:  # init="moment": the eigen-gap and whether training kept the warm start
            out["warm_start"] = self.metrics_["warm_start"]
        return out

    # -- persistence: JSON + safetensors, no pickled code --------------------------------------
    def save(self, path) -> Path:
        check_is_fitted(self, "autoencoder_")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        weights = path / "weights.safetensors"
        save_file({k: v.contiguous() for k, v in self.autoencoder_.state_dict().items()}, str(weights))
        state = {
            "params": self.get_params(),
            "settings": OmegaConf.to_container(self.settings_.to_config()),
            "x_mean": self.x_mean_.tolist(),
            "x_std": self.x_std_.tolist(),
            "domain_labels": self.domain_labels_,
            "metrics": self.metrics_,
            "feature_names": list(getattr(self, "feature_names_in_", [])) or None,
            "weights_sha256": sha256_file(weights),
        }
        write_text_atomic(path / "estimator.json", json.dumps(state, indent=2, default=str))
        return path

    @classmethod
    def load(cls, path) -> InvariantAutoencoder:
        """Read a directory written by ``save``. Nothing in it is trusted: the JSON is checked field by
        field, the weights against their checksum and against the shapes the JSON's architecture
        implies (built on torch's meta device first, so a tampered size allocates nothing), and every
        number must be finite. Raises SavedModelError naming the file."""
        path = Path(path)
        meta_path, weights_path = path / "estimator.json", path / "weights.safetensors"
        try:
            state = read_json(meta_path)
        except (OSError, ValueError) as err:
            raise SavedModelError(f"{meta_path} cannot be read ({err}); save the estimator again.") from err
        try:
            est = cls(**state["params"])
            settings = RunSettings.from_config(OmegaConf.create(state["settings"]))
            x_mean = np.asarray(state["x_mean"], dtype=np.float32)
            x_std = np.asarray(state["x_std"], dtype=np.float32)
            arch = OmegaConf.create(settings.model.autoencoder)
            if arch.get("name") not in ENCODER_NAMES or x_mean.shape != x_std.shape or x_mean.ndim != 1:
                raise ValueError("unknown architecture or mismatched x_mean/x_std")
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise SavedModelError(f"{meta_path} is not a valid estimator file ({err}); save the estimator again.") from err
        if not (np.isfinite(x_mean).all() and np.isfinite(x_std).all() and (x_std > 0).all()):
            raise SavedModelError(f"{meta_path}: x_mean/x_std must be finite with x_std > 0; the file was edited or is corrupt.")
        if not weights_path.is_file() or state.get("weights_sha256") != sha256_file(weights_path):
            raise SavedModelError(
                f"{weights_path} is missing or does not match the checksum in {meta_path}; save the estimator again."
            )
        with safe_open(str(weights_path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        whitened = "input_map" in shapes
        input_dim = shapes["input_map"][1] if whitened else len(x_mean)
        z_dim, restarts = settings.model.z_dim, settings.model.restarts
        try:
            with torch.device("meta"):  # shapes only: a tampered hidden size allocates nothing here
                built = build_autoencoder(arch, input_dim, z_dim, restarts)
        except (TypeError, ValueError) as err:  # options of another architecture, impossible sizes
            raise SavedModelError(
                f"{meta_path} describes another architecture than the weights in {weights_path} ({err}); the files were edited."
            ) from err
        expected = {k: tuple(v.shape) for k, v in built.state_dict().items()}
        if whitened:  # raw features -> whitened ones and back
            n_raw = len(x_mean)
            expected.update(input_mean=(n_raw,), input_map=(n_raw, input_dim), input_unmap=(input_dim, n_raw))
        if expected != shapes:
            raise SavedModelError(
                f"{meta_path} describes another architecture than the weights in {weights_path}; the files were edited."
            )
        # The parameters and the settings they were turned into must tell the same story.
        said = {
            "z_dim": (est.z_dim, settings.model.z_dim),
            "z_dim_stable": (est.z_dim_stable, settings.model.z_dim_stable),
            "restarts": (est.restarts, settings.model.restarts),
            "init": (est.init, settings.model.init),
            "encoder": (est.encoder, settings.model.autoencoder.get("name")),
        }
        wrong = [name for name, (param, setting) in said.items() if param is not None and param != setting]
        if wrong:
            raise SavedModelError(
                f"{meta_path}: the parameters {wrong} disagree with the settings stored beside them; the file was edited."
            )
        weights = load_file(str(weights_path))
        bad = non_finite_entries(weights)
        if bad:
            raise SavedModelError(f"{weights_path} holds NaN/inf values in {bad}; the file was edited or is corrupt.")
        ae = build_autoencoder(arch, input_dim, z_dim, restarts)
        if whitened:
            ae.set_whitening(weights["input_mean"], weights["input_map"])
        ae.load_state_dict(weights)
        est.autoencoder_, est.settings_, est.x_mean_, est.x_std_ = ae.eval(), settings, x_mean, x_std
        est.n_features_in_ = len(x_mean)
        if state.get("feature_names"):
            est.feature_names_in_ = np.asarray(state["feature_names"], dtype=object)
        est.domain_labels_, est.metrics_ = state.get("domain_labels"), state.get("metrics")
        return est
