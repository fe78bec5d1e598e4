"""Evaluation of a trained model, in one place: the run's metrics.json (command line and estimator),
the loss terms over a split, the diagnostics that need no ground truth, and the metrics table."""

from __future__ import annotations

import numpy as np
import torch

from mdcrl.data import MultiDomainData
from mdcrl.data.base import Split
from mdcrl.data.datamodule import batch_loader
from mdcrl.identifiability import support_identifiable_for
from mdcrl.metrics import HEADLINE, REFERENCE_NAMES, evaluate_latents, stability_diagnostics
from mdcrl.models.module import MultiDomainAutoencoder


@torch.no_grad()
def split_losses(module: MultiDomainAutoencoder, split: Split, batch_size: int) -> dict[str, np.ndarray]:
    """Sample-weighted mean of every restart's loss terms (R,) over a split, batch by batch as in
    training, plus the selection score (models/module.py)."""
    module.eval()
    totals: dict[str, np.ndarray] = {}
    count = 0
    for x, _, domains in batch_loader(split, batch_size, shuffle=False):
        parts, _ = module.evaluation_parts(x.to(module.device), domains.to(module.device))
        for name, value in parts.items():
            totals[name] = totals.get(name, 0.0) + value.cpu().numpy().astype(np.float64) * len(x)
        count += len(x)
    return {name: total / count for name, total in totals.items()}


def evaluate(module: MultiDomainAutoencoder, data: MultiDomainData, batch_size: int, nonlinear: bool = True) -> dict:
    """metrics.json: the regressions of the true latents on the learned ones (when the data has
    them), the identifiability certificate, the diagnostics, and the test loss terms."""
    train, test = data.splits["train"], data.splits["test"]
    h_train, h_test = module.encode(train.x), module.encode(test.x)
    if not (np.isfinite(h_train).all() and np.isfinite(h_test).all()):
        raise FloatingPointError("the trained encoder produces non-finite latents; see the run's csv/metrics.csv")
    metrics = {}
    if train.z.shape[1]:  # ground truth known
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
    Console().print(table)
