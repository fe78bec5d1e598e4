"""Metrics (docs/design.md, Evaluation): held-out R^2 of regressions between learned and true latent blocks,
domain accuracy and MCC. Every probe is fitted on the train split and scored on the test split.

h = z_hat (learned), h_S = h[:, :d_hat_S]; z = true latents, z_S = z[:, :d_S], z_U = the rest.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.compose import TransformedTargetRegressor
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

# The reference code's names for the same regressions ("~r2" = the reversed regression,
# true latents predicted from the learned ones). README.md repeats this table.
REFERENCE_NAMES = {
    "r2_zinv_from_hinv": "hz_z_~r2",
    "r2_zsp_from_hinv": "hz_~z_~r2",
    "r2_hinv_from_zinv": "hz_z_r2",
    "r2_hinv_from_zsp": "hz_~z_r2",
    "r2_z_from_h": "~r2",
    # coloured digits (data/mnist.py): the published code's digit-accuracy and colour-R^2 probes of h_S
    "digit_acc_from_hinv": "digits_accuracy_hz",
    "color_r2_from_hinv": "colors_r2_hz",
}

HEADLINE = (
    "r2_zinv_from_hinv",
    "r2_zsp_from_hinv",
    "r2_hinv_from_zinv",
    "r2_hinv_from_zsp",
    "r2_z_from_h",
    "oracle_r2_zsp_from_zinv",
    "r2_zinv_from_hinv_nonlinear",
    "r2_zsp_from_hinv_nonlinear",
    "mcc",
    "domain_acc_hinv",
    "domain_acc_h",
    "digit_acc_from_hinv",
    "digit_acc_from_hsp",
    "digit_acc_from_h",
    "color_r2_from_hinv",
    "color_r2_from_hsp",
    "color_r2_from_h",
    "oracle_color_r2_from_digit",
    "recon_mse",
    "penalty",
)

# Kernel ridge is O(n^3): its probes use at most this many train and test samples.
NONLINEAR_MAX_SAMPLES = 2000


def nonlinear_probe(n_features: int):
    """RBF kernel ridge on standardised inputs and targets; gamma = 1 / n_features."""
    ridge = make_pipeline(StandardScaler(), KernelRidge(alpha=1e-2, kernel="rbf", gamma=1.0 / max(n_features, 1)))
    # check_inverse=False: a StandardScaler is its own exact inverse up to float rounding, which is
    # all scikit-learn's check ever caught here (it warned twice per run, "not strictly inverse").
    return TransformedTargetRegressor(regressor=ridge, transformer=StandardScaler(), check_inverse=False)


def lstsq_fit(x_train: np.ndarray, y_train: np.ndarray):
    """The least-squares affine map x -> y fitted on train rows, as a function of new rows."""
    x_mean, y_mean = x_train.mean(axis=0), y_train.mean(axis=0)
    coef, *_ = np.linalg.lstsq(x_train - x_mean, y_train - y_mean, rcond=None)
    return lambda x: (x - x_mean) @ coef + y_mean


def r2_per_target(y_test: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """R^2 of each target column, as scikit-learn's r2_score scores one (a target constant on test
    scores 1 if predicted exactly, else 0)."""
    residual = ((y_test - pred) ** 2).sum(axis=0)
    total = ((y_test - y_test.mean(axis=0)) ** 2).sum(axis=0)
    exact = residual == 0
    return np.where(total > 0, 1.0 - residual / np.where(total > 0, total, 1.0), np.where(exact, 1.0, 0.0))


def probe_r2_per_target(x_train, y_train, x_test, y_test, kind: str = "linear") -> np.ndarray:
    """Held-out R^2 of each target column of one probe fitted on train (all targets at once) and
    scored on test. Both probes treat the target columns independently (least squares column by
    column; kernel ridge: one kernel and one factorisation, a solve per column; the target scaler
    per column), so one fit for several blocks of targets gives each block's R^2 exactly as its
    own fit would, at the cost of one."""
    x_train, x_test = (np.asarray(a, dtype=np.float64) for a in (x_train, x_test))
    y_train, y_test = (np.asarray(a, dtype=np.float64) for a in (y_train, y_test))
    if kind == "linear":
        return r2_per_target(y_test, lstsq_fit(x_train, y_train)(x_test))
    x_train, y_train = x_train[:NONLINEAR_MAX_SAMPLES], y_train[:NONLINEAR_MAX_SAMPLES]
    x_test, y_test = x_test[:NONLINEAR_MAX_SAMPLES], y_test[:NONLINEAR_MAX_SAMPLES]
    model = nonlinear_probe(x_train.shape[1]).fit(x_train, y_train)
    return r2_per_target(y_test, model.predict(x_test).reshape(y_test.shape))


def linear_r2(x_train, y_train, x_test, y_test) -> float:
    """Held-out R^2 of ordinary least squares with an intercept, averaged over targets: the same
    numbers as LinearRegression + r2_score. Written with numpy because the per-epoch curves fit it
    twice an epoch, where scikit-learn's input checks cost ~10x the solve."""
    return float(probe_r2_per_target(x_train, y_train, x_test, y_test).mean())


def heldout_r2(x_train, y_train, x_test, y_test, kind: str = "linear") -> float:
    """R^2 (averaged over target coordinates) of a probe fitted on train and scored on test."""
    if x_train.shape[1] == 0 or y_train.shape[1] == 0:
        return float("nan")
    return float(probe_r2_per_target(x_train, y_train, x_test, y_test, kind).mean())


def domain_accuracy(h_train, d_train, h_test, d_test) -> float:
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(h_train, d_train)
    return float(model.score(h_test, d_test))


def mean_corr_coef(h: np.ndarray, z: np.ndarray) -> float:
    """MCC: mean absolute Pearson correlation of true latents with their Hungarian-matched learned ones."""
    hs = (h - h.mean(0)) / (h.std(0) + 1e-12)
    zs = (z - z.mean(0)) / (z.std(0) + 1e-12)
    corr = np.abs(zs.T @ hs) / len(h)  # (z_dim, h_dim)
    rows, cols = linear_sum_assignment(-corr)
    return float(corr[rows, cols].mean())


def shuffled_order(n: int, seed: int = 0) -> np.ndarray:
    # Subsamples for the kernel probe must mix all domains (splits are stored domain by domain).
    return np.random.default_rng(seed).permutation(n)


def evaluate_latents(
    h_train: np.ndarray,
    z_train: np.ndarray,
    d_train: np.ndarray,
    h_test: np.ndarray,
    z_test: np.ndarray,
    d_test: np.ndarray,
    h_dim_stable: int,
    z_dim_stable: int,
    nonlinear: bool = True,
) -> dict:
    """All the regressions and classifiers of metrics.json. Returns a flat dict of floats plus the R^2 block matrices."""
    ptr, pte = shuffled_order(len(h_train)), shuffled_order(len(h_test), 1)
    h_train, z_train, d_train = h_train[ptr], z_train[ptr], d_train[ptr]
    h_test, z_test, d_test = h_test[pte], z_test[pte], d_test[pte]
    blocks_h = {"hinv": slice(0, h_dim_stable), "hsp": slice(h_dim_stable, None)}
    blocks_z = {"zinv": slice(0, z_dim_stable), "zsp": slice(z_dim_stable, None)}
    out: dict = {}

    def r2_blocks(source_train, source_test, target_train, target_test, targets, kind="linear") -> dict:
        """{target block: R^2 of it from the source} with one probe for all target blocks."""
        if source_train.shape[1] == 0:
            return {name: float("nan") for name in targets}
        scores = probe_r2_per_target(source_train, target_train, source_test, target_test, kind)
        return {name: float(scores[cols].mean()) if scores[cols].size else float("nan") for name, cols in targets.items()}

    def z_from_h(kind):  # {"zinv_from_hinv": ..., ...}: each learned block once, for both true blocks
        return {
            f"{t}_from_{s}": value
            for s, cols in blocks_h.items()
            for t, value in r2_blocks(h_train[:, cols], h_test[:, cols], z_train, z_test, blocks_z, kind).items()
        }

    linear = z_from_h("linear")
    out["r2_zinv_from_hinv"] = linear["zinv_from_hinv"]
    out["r2_zsp_from_hinv"] = linear["zsp_from_hinv"]
    hinv_train, hinv_test = h_train[:, blocks_h["hinv"]], h_test[:, blocks_h["hinv"]]
    for s, cols in blocks_z.items():  # a learned block from a true one
        out[f"r2_hinv_from_{s}"] = heldout_r2(z_train[:, cols], hinv_train, z_test[:, cols], hinv_test)
    out["r2_z_from_h"] = heldout_r2(h_train, z_train, h_test, z_test)
    out["oracle_r2_zsp_from_zinv"] = heldout_r2(
        z_train[:, blocks_z["zinv"]], z_train[:, blocks_z["zsp"]], z_test[:, blocks_z["zinv"]], z_test[:, blocks_z["zsp"]]
    )
    out["r2_blocks_linear"] = {f"{t}_from_{s}": linear[f"{t}_from_{s}"] for t in blocks_z for s in blocks_h}
    if nonlinear:
        kernel = z_from_h("nonlinear")
        out["r2_blocks_nonlinear"] = {f"{t}_from_{s}": kernel[f"{t}_from_{s}"] for t in blocks_z for s in blocks_h}
        out["r2_zinv_from_hinv_nonlinear"] = kernel["zinv_from_hinv"]
        out["r2_zsp_from_hinv_nonlinear"] = kernel["zsp_from_hinv"]
    out["mcc"] = mean_corr_coef(h_test, z_test)
    out["domain_acc_hinv"] = domain_accuracy(h_train[:, blocks_h["hinv"]], d_train, h_test[:, blocks_h["hinv"]], d_test)
    out["domain_acc_h"] = domain_accuracy(h_train, d_train, h_test, d_test)
    return out


# The logistic digit probes use at most this many (shuffled) train rows: lbfgs on 128 latents costs
# about a second per 10,000 rows, and the accuracy moves by less than its test-set noise above it.
DIGIT_PROBE_MAX_SAMPLES = 10000


def digit_accuracy(h_train, y_train, h_test, y_test) -> float:
    """Held-out accuracy of a multinomial logistic regression (standardised inputs)."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(h_train[:DIGIT_PROBE_MAX_SAMPLES], y_train[:DIGIT_PROBE_MAX_SAMPLES])
    return float(model.score(h_test, y_test))


def color_r2_from_digit(z_train: np.ndarray, z_test: np.ndarray) -> float:
    """What color_r2_from_hinv is for an h_S that is the digit and nothing else (one-hot), from the
    true latents z = [digit, r, g, b]: under the dynamic SCM the colour depends on the digit (0-4 low,
    5-9 high), so even that ideal h_S predicts some of it; about 0 under the independent SCM."""
    one_hot = np.eye(10)
    digits_train, digits_test = z_train[:, 0].astype(np.int64), z_test[:, 0].astype(np.int64)
    return heldout_r2(one_hot[digits_train], z_train[:, 1:], one_hot[digits_test], z_test[:, 1:])


def digit_colour_metrics(h_train, z_train, d_train, h_test, z_test, d_test, h_dim_stable: int) -> dict:
    """Coloured digits (z = [digit, r, g, b], data/mnist.py): for the whole latent h, its stable
    block h_S (hinv) and its spurious block h_U (hsp), the held-out accuracy of a logistic
    regression of the digit (digit_acc_from_*) and the R^2 of a linear regression of the colour
    (color_r2_from_*, averaged over r, g, b); h_S should keep the digit and lose the colour. Also
    the domain probes of evaluate_latents."""
    ptr, pte = shuffled_order(len(h_train)), shuffled_order(len(h_test), 1)
    h_train, z_train, d_train = h_train[ptr], z_train[ptr], d_train[ptr]
    h_test, z_test, d_test = h_test[pte], z_test[pte], d_test[pte]
    digits_train, digits_test = z_train[:, 0].astype(np.int64), z_test[:, 0].astype(np.int64)
    out = {}
    for name, cols in (("h", slice(None)), ("hinv", slice(0, h_dim_stable)), ("hsp", slice(h_dim_stable, None))):
        a, b = h_train[:, cols], h_test[:, cols]
        out[f"digit_acc_from_{name}"] = digit_accuracy(a, digits_train, b, digits_test) if a.shape[1] else float("nan")
        out[f"color_r2_from_{name}"] = heldout_r2(a, z_train[:, 1:], b, z_test[:, 1:])
    out["oracle_color_r2_from_digit"] = color_r2_from_digit(z_train, z_test)
    out["domain_acc_hinv"] = domain_accuracy(h_train[:, :h_dim_stable], d_train, h_test[:, :h_dim_stable], d_test)
    out["domain_acc_h"] = domain_accuracy(h_train, d_train, h_test, d_test)
    return out


def split_half_r2(h: np.ndarray, z: np.ndarray, h_dim_stable: int, z_dim_stable: int) -> dict:
    """Cheap per-epoch curves on the validation split: probes fitted on one half, scored on the other."""
    order = shuffled_order(len(h))
    h, z = h[order], z[order]
    half = len(h) // 2
    hs = h[:, :h_dim_stable]
    return {
        "r2_zinv_from_hinv": heldout_r2(hs[:half], z[:half, :z_dim_stable], hs[half:], z[half:, :z_dim_stable]),
        "r2_zsp_from_hinv": heldout_r2(hs[:half], z[:half, z_dim_stable:], hs[half:], z[half:, z_dim_stable:]),
    }


# The invariance verdict's thresholds (docs/tutorial_own_data.md, "Read the diagnostics"). Each
# signal flags the stable block when it is past its threshold:
# - the domain probe on h_S: accuracy above chance, as a share of what is above chance
#   ((acc - chance) / (1 - chance)); a stable block predicts the domain no better than chance;
VERDICT_DOMAIN_EXCESS = 0.10
# - the per-domain variance of h_S, its spread across domains relative to the overall variance;
VERDICT_VAR_SPREAD = 0.15
# - the per-domain minimum and maximum of h_S: only when their spread is not below the spurious
#   block's, since the extremes of unbounded (e.g. Gaussian) latents move between domains by
#   chance even when the blocks are separated.
VERDICT_SUPPORT_RATIO = 1.0


def invariance_verdict(diagnostics: dict) -> str:
    """ "invariant", or "not invariant: <reasons>" from stability_diagnostics' signals (no ground truth)."""
    d = diagnostics
    reasons = []
    if "domain_acc_stable" in d:
        chance = d["domain_acc_chance"]
        excess = (d["domain_acc_stable"] - chance) / max(1.0 - chance, 1e-12)
        if excess > VERDICT_DOMAIN_EXCESS:
            reasons.append(f"the domain is predictable from h_S (accuracy {d['domain_acc_stable']:.2f}, chance {chance:.2f})")
    if d.get("stable_var_spread", 0.0) > VERDICT_VAR_SPREAD:
        reasons.append(f"h_S's variance differs across domains (spread {d['stable_var_spread']:.2f})")
    for end in ("min", "max"):
        stable, spurious = d.get(f"stable_{end}_spread"), d.get(f"spurious_{end}_spread")
        if stable is not None and spurious is not None and stable >= VERDICT_SUPPORT_RATIO * spurious:
            reasons.append(f"h_S's {end}ima move across domains as much as h_U's ({stable:.2f} vs {spurious:.2f})")
    return "invariant" if not reasons else "not invariant: " + "; ".join(reasons)


def stability_diagnostics(h: np.ndarray, domains: np.ndarray, h_dim_stable: int, seed: int = 0) -> dict:
    """Checks that need no ground truth. For the stable block (and the spurious block, for contrast):
    how far the per-domain min, max and variance of each coordinate spread across domains, relative
    to the coordinate's overall std (variance: overall variance), averaged over coordinates; and how
    well a logistic probe (fitted on half the rows, scored on the other half) tells the domain from
    the stable block, next to chance (the largest domain's share); and the verdict that combines
    them (invariance_verdict)."""
    out = {}
    labels = np.unique(domains)
    for block, cols in (("stable", slice(0, h_dim_stable)), ("spurious", slice(h_dim_stable, None))):
        hb = h[:, cols]
        if hb.shape[1] == 0:
            continue
        std = hb.std(axis=0) + 1e-12
        per = np.stack([[hb[domains == d].min(0), hb[domains == d].max(0), hb[domains == d].var(0)] for d in labels])
        spread = per.max(axis=0) - per.min(axis=0)  # (3, coords)
        out[f"{block}_min_spread"] = float((spread[0] / std).mean())
        out[f"{block}_max_spread"] = float((spread[1] / std).mean())
        out[f"{block}_var_spread"] = float((spread[2] / std**2).mean())
    order = shuffled_order(len(h), seed)
    half = len(h) // 2
    train, test = order[:half], order[half:]
    if len(np.unique(domains[train])) > 1:
        out["domain_acc_stable"] = domain_accuracy(h[train, :h_dim_stable], domains[train], h[test, :h_dim_stable], domains[test])
    out["domain_acc_chance"] = float(np.bincount(domains).max() / len(domains))
    out["verdict"] = invariance_verdict(out)
    return out
