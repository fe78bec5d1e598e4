"""Evaluation of a trained model, in one place: the run's metrics.json (command line and estimator),
the loss terms over a split, the diagnostics that need no ground truth, and the metrics table."""

from __future__ import annotations

import numpy as np
import torch

from mdcrl.data import MultiDomainData
from mdcrl.data.base import Split
from mdcrl.data.datamodule import batch_loader, interleaved_order
from mdcrl.identifiability import support_identifiable_for
from mdcrl.metrics import (
    HEADLINE,
    REFERENCE_NAMES,
    digit_colour_metrics,
    evaluate_latents,
    lstsq_fit,
    stability_diagnostics,
)
from mdcrl.models.module import SELECTION_MAX_ROWS, MultiDomainAutoencoder
from mdcrl.moment import subspace_overlap

# Datasets whose true latents are [digit label, colour] (data/mnist.py), in stage 1 and stage 2.
DIGIT_KINDS = ("mnist", "mnist_encoded")


@torch.no_grad()
def split_losses(module: MultiDomainAutoencoder, split: Split, batch_size: int) -> dict[str, np.ndarray]:
    """Sample-weighted mean of every restart's loss terms (R,) over a split, batch by batch as in
    training, plus the selection score of the whole split (models/module.py), as validation
    computes it."""
    means, outputs = _split_passes(module, split, batch_size)
    means["selection"] = module.heldout_selection(means["recon_mse"].float(), outputs).double()
    return {name: value.cpu().numpy() for name, value in means.items()}


@torch.no_grad()
def selection_with_null_spread(
    module: MultiDomainAutoencoder, split: Split, batch_size: int, copy: int, permutations: int = 20
) -> tuple[float, float]:
    """Copy ``copy``'s selection score over a split (as split_losses computes it) and how much it
    moves when the split's domain labels are permuted (standard deviation over ``permutations`` fixed
    permutations): the noise of the penalties' estimate on this many rows, without ground truth. The
    reconstruction term does not depend on the labels, so this is the spread of the penalty part
    alone. One pass over the split serves both."""
    means, outputs = _split_passes(module, split, batch_size)
    score = float(module.heldout_selection(means["recon_mse"].float(), outputs).double()[copy])
    h = torch.cat([o[0][copy : copy + 1] for o in outputs], dim=1)[:, :SELECTION_MAX_ROWS]
    domains = torch.cat([o[1] for o in outputs])[:SELECTION_MAX_ROWS]  # the rows heldout_selection reads
    generator = torch.Generator().manual_seed(0)  # the same permutations for every run and attempt
    orders = [torch.randperm(len(domains), generator=generator).to(domains.device) for _ in range(permutations)]
    shuffled = torch.stack([domains[order] for order in orders])
    scores = module.selection_scores_relabelled(means["recon_mse"][copy].float(), h[0], shuffled).double()
    return score, float(scores.std())


def _split_passes(module: MultiDomainAutoencoder, split: Split, batch_size: int) -> tuple[dict[str, torch.Tensor], list]:
    """One pass over a split in eval mode: the sample-weighted mean of every loss term (R,), and the
    (latents, domains) of the batches that the held-out selection score reads."""
    module.eval()
    totals: dict[str, torch.Tensor] = {}
    outputs = []
    count = 0
    for x, _, domains in batch_loader(split, batch_size, shuffle=False):
        x, domains = x.to(module.device), domains.to(module.device)
        parts, h = module.evaluation_parts(x, domains)
        for name, value in parts.items():
            totals[name] = totals.get(name, 0.0) + value.double() * len(x)
        if sum(len(o[1]) for o in outputs) < SELECTION_MAX_ROWS:
            outputs.append((h, domains))
        count += len(x)
    return {name: total / count for name, total in totals.items()}, outputs


@torch.no_grad()
def model_inputs(module: MultiDomainAutoencoder, x: np.ndarray) -> np.ndarray:
    """Raw flat x as the model sees it (whitened when the model whitens), float64."""
    return module.autoencoder.prepare(torch.from_numpy(x).to(module.device)).double().cpu().numpy()


@torch.no_grad()
def selection_of_latents(module: MultiDomainAutoencoder, h_train, h_valid, x_train, x_valid, domains_valid, d_s: int) -> float:
    """The validation selection score (models/module.py) of given latents (n, z): reconstruction of
    the model's input x (as the model sees it: model_inputs) by the least-squares linear decoder from
    h (fitted on train), and the penalties of the first d_s coordinates over the split's held-out
    rows, as validation computes it."""
    decode = lstsq_fit(np.asarray(h_train, dtype=np.float64), x_train)
    recon = np.square(decode(np.asarray(h_valid, dtype=np.float64)) - x_valid).mean()
    rows = interleaved_order(domains_valid)[:SELECTION_MAX_ROWS].numpy()
    h_s = torch.as_tensor(h_valid[rows, :d_s], dtype=torch.float32, device=module.device)[None]
    domains = torch.as_tensor(domains_valid[rows], device=module.device)
    recon_mse = torch.tensor([recon], dtype=torch.float32, device=module.device)
    return float(module.selection_score(recon_mse, h_s, domains)[0])


def optimisation_gap(module: MultiDomainAutoencoder, data: MultiDomainData, h_train: np.ndarray, x_train: np.ndarray) -> dict:
    """Optimisation or statistics, per run (data with true latents and flat inputs only): the
    validation selection score of the found latents (selection_found) next to that of the encoder
    whose stable block is the least-squares map from the model's input to the true z_S
    (selection_at_truth); both with the least-squares decoder, so that they compare like with like.
    found > truth: the optimiser left a better solution of the objective unfound. A report of what
    happened: never read by selection or stopping.

    The truth's spurious block is the complement of its stable block in the model's input (as many
    directions as the found spurious block has), not the found spurious block: that one complements
    the found stable block, and beside the true one it leaves reconstruction error that is the
    found solution's, not the truth's (measured: it made the truth score worse than training did).
    ``h_train`` and ``x_train``: the train split's latents and model inputs (model_inputs).

    Without a penalty (stage 1, the no-penalty baseline) the objective does not involve the stable
    block, so no solution of it is "the truth's": no gap is reported (the scores were both
    reconstruction errors, compared across different decoders)."""
    train, valid = data.splits["train"], data.splits["valid"]
    if not train.z.shape[1] or train.x.ndim != 2 or data.metadata.get("kind") in DIGIT_KINDS:
        return {}
    if not module.penalties.any_enabled:
        return {}
    d_s = module.z_dim_stable
    h_valid, x_valid = module.encode(valid.x), model_inputs(module, valid.x)
    truth_train, truth_valid = truth_latents(data, x_train, x_valid, h_train.shape[1] - d_s)
    return {
        "selection_found": selection_of_latents(module, h_train, h_valid, x_train, x_valid, valid.domain, d_s),
        "selection_at_truth": selection_of_latents(
            module, truth_train, truth_valid, x_train, x_valid, valid.domain, data.z_dim_stable_true
        ),
    }


def truth_latents(data: MultiDomainData, x_train: np.ndarray, x_valid: np.ndarray, spurious_dims: int):
    """(train, valid) latents of the encoder whose stable block is the least-squares map from the
    model's input to the true z_S, beside ``spurious_dims`` directions of the complement: the input's
    principal directions once the true stable block is regressed out (optimisation_gap says why)."""
    z_stable = data.splits["train"].z[:, : data.z_dim_stable_true].astype(np.float64)
    to_stable = lstsq_fit(x_train, z_stable)
    stable_train, stable_valid = to_stable(x_train), to_stable(x_valid)
    residual = x_train - lstsq_fit(stable_train, x_train)(stable_train)
    directions = np.linalg.svd(residual - residual.mean(0), full_matrices=False)[2][:spurious_dims].T
    return (
        np.concatenate([stable_train, x_train @ directions], axis=1),
        np.concatenate([stable_valid, x_valid @ directions], axis=1),
    )


# A trained stable block whose span overlaps the warm start's by at least this much "refined" it.
WARM_START_KEPT_OVERLAP = 0.99


@torch.no_grad()
def warm_start_report(module: MultiDomainAutoencoder, h_train: np.ndarray, x_train: np.ndarray) -> dict:
    """Where training went from the moment warm start, without ground truth: the eigen-gap (and
    whether it is clear), the overlap of the learned stable block's span with the estimate's
    (moment.subspace_overlap of the least-squares map from the whitened input to h_S), and the
    verdict: "kept" (the untrained warm start won the selection), "refined" (overlap >=
    WARM_START_KEPT_OVERLAP) or "left". ``h_train``, ``x_train``: the train split's latents and
    model inputs (model_inputs)."""
    estimate = module.warm_start
    h_s = h_train[:, : module.z_dim_stable].astype(np.float64)
    effective, *_ = np.linalg.lstsq(x_train - x_train.mean(0), h_s - h_s.mean(0), rcond=None)
    overlap = subspace_overlap(effective, estimate.stable)
    if module.warm_start_kept:
        verdict = "kept"
    else:
        verdict = "refined" if overlap >= WARM_START_KEPT_OVERLAP else "left"
    return {**estimate.summary(), "overlap_with_estimate": overlap, "verdict": verdict}


def evaluate(module: MultiDomainAutoencoder, data: MultiDomainData, batch_size: int, nonlinear: bool = True) -> dict:
    """metrics.json: the regressions of the true latents on the learned ones (when the data has
    them), the identifiability certificate, the diagnostics, and the test loss terms."""
    train, test = data.splits["train"], data.splits["test"]
    h_train, h_test = module.encode(train.x), module.encode(test.x)
    if not (np.isfinite(h_train).all() and np.isfinite(h_test).all()):
        raise FloatingPointError("the trained encoder produces non-finite latents; see the run's csv/metrics.csv")
    metrics = {}
    if data.metadata.get("kind") in DIGIT_KINDS:  # z = [digit, colour]: class and colour probes
        metrics = digit_colour_metrics(h_train, train.z, train.domain, h_test, test.z, test.domain, module.z_dim_stable)
    elif train.z.shape[1]:  # ground truth known
        metrics = evaluate_latents(
            h_train,
            train.z,
            train.domain,
            h_test,
            test.z,
            test.domain,
            module.z_dim_stable,
            data.z_dim_stable_true,
            nonlinear=nonlinear,
        )
    # the train split as the model sees it, once for the two diagnostics that need it
    x_train = model_inputs(module, train.x) if train.x.ndim == 2 else None
    metrics.update(optimisation_gap(module, data, h_train, x_train))
    if module.warm_start is not None:
        metrics["eigengap"] = module.warm_start.eigengap
        metrics["warm_start"] = warm_start_report(module, h_train, x_train)
    metrics["support_identifiable"] = support_identifiable_for(data.metadata)
    metrics["diagnostics"] = stability_diagnostics(h_test, test.domain, module.z_dim_stable)
    losses = split_losses(module, test, batch_size)
    chosen = module.chosen_restart
    metrics["recon_mse"] = float(losses["recon_mse"][chosen])
    metrics["penalty"] = float(losses["penalty"][chosen])
    metrics["test_loss"] = float(losses["loss"][chosen])
    return metrics


def print_metrics(metrics: dict, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("reference code's name")
    for key in HEADLINE:
        if key in metrics:
            table.add_row(key, f"{metrics[key]:.4f}", REFERENCE_NAMES.get(key, ""))
    # the signals that need no ground truth, and their verdict (metrics.invariance_verdict)
    diagnostics = metrics.get("diagnostics") or {}
    for key in ("domain_acc_stable", "domain_acc_chance", "stable_var_spread"):
        if key in diagnostics:
            table.add_row(f"diagnostics.{key}", f"{diagnostics[key]:.4f}", "")
    if "verdict" in diagnostics:
        table.add_row("diagnostics.verdict", diagnostics["verdict"], "")
    Console().print(table)
