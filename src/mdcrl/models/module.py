"""The training module: reconstruction + penalty_weight * invariance penalties + hinge (docs/design.md, Objective).

With restarts (R copies of the autoencoder, see models/base.py) every loss term is a vector (R,):
training minimises their sum (the copies share no parameters, so each follows its own Adam
trajectory; gradients are clipped per copy). At the end of each validation epoch the copy with the
lowest ``val/selection`` becomes the autoencoder's ``chosen`` one, and every logged curve is that
copy's; checkpointing and early stopping monitor ``val/selection`` too (early stopping its log, for a
relative threshold), so that one criterion picks the epoch and the copy. After
``restart_selection_epochs`` the choice is final and only the chosen copy is computed. The score
uses only validation data, never the true latents:

    selection = recon_mse + penalty_weight * sum_p weight_p * penalty_p(h_S / std(h_S))

the training objective with the stable block standardised per coordinate, its penalties taken over
the whole validation split at once (up to SELECTION_MAX_ROWS rows, every domain in proportion), not
batch by batch. The raw penalties scale with h_S, so a copy whose latents are merely smaller looks
better: measured on the grid, the raw validation loss picked a copy at r2_zinv 0.88 over three at
0.996-0.999, and the standardised score ranked those copies correctly. MMD with the mean-distance
bandwidth (fix_sigma=null) is already scale-free and is taken as it is; the hinge is left out.

Why the whole split: the splits are stored domain by domain, so 1024-row batches of them held only
some domains and their penalties compared only some pairs; scored that way, trained copies at r2
0.74-0.96 ranked above the untrained warm start at 0.99 in all 13 z_dim 64 MMD runs where they
differ, and over the 2000 rows of the split the warm start ranked first in 9 of them
(docs/results/linear/studies/selection/). The recon term is a per-row mean, the same either way.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict

import lightning as L
import numpy as np
import torch

from mdcrl import penalties as penalty_fns
from mdcrl.data.datamodule import to_model_input
from mdcrl.errors import NonFiniteLossError
from mdcrl.metrics import split_half_r2
from mdcrl.settings import PENALTY_NAMES, OptimSettings, PenaltySettings, per_restart_lr_scales

# The held-out selection score takes its penalties over at most this many rows of the split at once
# (the first rows of the held-out order, which spreads every domain evenly: datamodule.interleaved_order).
# With 4 restarts the MMD kernel of 2048 rows is 64 MB.
SELECTION_MAX_ROWS = 2048
# The penalties that scale with h_S and that the selection score (and, with model.penalty_standardize,
# training) takes on h_S standardised per coordinate.
SCALE_FREE_PENALTIES = ("minmax", "stddev")


class MultiDomainAutoencoder(L.LightningModule):
    def __init__(
        self,
        autoencoder: torch.nn.Module,
        num_domains: int,
        z_dim_stable: int,
        z_dim_stable_true: int,
        penalties: PenaltySettings,
        optim: OptimSettings,
        restart_selection_epochs: int | None = None,
    ):
        super().__init__()
        self.autoencoder = autoencoder
        self.num_domains = num_domains
        self.z_dim_stable = z_dim_stable
        self.z_dim_stable_true = z_dim_stable_true
        self.penalties = penalties
        self.optim = optim
        self.restart_selection_epochs = restart_selection_epochs
        self.automatic_optimization = False
        self._warned_bandwidth = False
        self._val_outputs: list = []
        self._epoch_sums: dict = {}
        self.warm_start = None  # the moment estimate copy builders.WARM_COPY started from (model.init=moment)
        self.warm_start_kept = False  # set after fitting: the untrained warm start won the selection
        self.last_selection: torch.Tensor | None = None  # the last validation epoch's selection score per copy (R,)

    # -- objective ---------------------------------------------------------------------------
    def penalty_terms(self, h_s: torch.Tensor, domains: torch.Tensor, names=None) -> dict[str, torch.Tensor]:
        """The enabled (weight > 0) penalties, unweighted, by name (only those in ``names`` if given)."""
        p, k = self.penalties, self.num_domains
        wanted = lambda name, weight: weight > 0 and (names is None or name in names)  # noqa: E731
        terms = {}
        if wanted("minmax", p.weights.get("minmax", 0)):
            # the null correction is for training steps only: held-out scores and the selection stay plain
            options = {**asdict(p.minmax), "null_corrected": p.minmax.null_corrected and self.training}
            terms["minmax"] = penalty_fns.minmax_penalty(h_s, domains, k, reduction=p.reduction, **options)
        if wanted("mmd", p.weights.get("mmd", 0)):
            self._check_bandwidth(h_s)
            terms["mmd"] = penalty_fns.mmd_penalty(h_s, domains, k, reduction=p.reduction, **asdict(p.mmd))
        if wanted("stddev", p.weights.get("stddev", 0)):
            terms["stddev"] = penalty_fns.stddev_penalty(h_s, domains, k, reduction=p.reduction, stddev_eps=p.stddev_eps)
        if wanted("domain_means", p.weights.get("domain_means", 0)):
            terms["domain_means"] = penalty_fns.domain_means_penalty(h_s, domains, k)
        if wanted("domain_covariances", p.weights.get("domain_covariances", 0)):
            terms["domain_covariances"] = penalty_fns.domain_covariances_penalty(h_s, domains, k)
        if wanted("hinge", p.hinge_weight):
            terms["hinge"] = penalty_fns.hinge_loss(h_s, domains, k, reduction=p.reduction, **asdict(p.hinge))
        return terms

    def scale_free_terms(self, h_s: torch.Tensor, domains: torch.Tensor, names=None) -> dict[str, torch.Tensor]:
        """penalty_terms with h_s standardised per coordinate over its rows for the penalties in
        SCALE_FREE_PENALTIES, so that shrinking (or saturating) h_S cannot lower them; MMD (whose
        mean-distance bandwidth is already scale-free), domain_means and domain_covariances
        (affine-invariant) and the hinge (a threshold on the std itself) take h_s as it is. The
        selection score always uses it; training with model.penalty_standardize."""
        keep = [n for n in (*PENALTY_NAMES, "hinge") if n not in SCALE_FREE_PENALTIES and (names is None or n in names)]
        free = [n for n in SCALE_FREE_PENALTIES if names is None or n in names]
        terms = self.penalty_terms(h_s, domains, names=keep)
        if any(self.penalties.weights.get(n, 0) > 0 for n in free):
            standardised = h_s / h_s.std(dim=-2, keepdim=True).clamp_min(1e-12)
            terms.update(self.penalty_terms(standardised, domains, names=free))
        return terms

    def _check_bandwidth(self, h_s):
        if self._warned_bandwidth:
            return
        mmd = self.penalties.mmd
        typical = penalty_fns.mmd_kernel_vanishes(h_s[0].detach(), mmd.fix_sigma, mmd.kernel_number, mmd.kernel_multiplier)
        if typical is not None:
            warnings.warn(
                f"model.mmd_loss.fix_sigma={mmd.fix_sigma} is far below the typical squared "
                f"distance between latents: typical kernel value {typical:.1e}, so the MMD penalty is nearly "
                "constant with a vanishing gradient. Use model.mmd_loss.fix_sigma=null (mean-distance bandwidth).",
                stacklevel=2,
            )
        self._warned_bandwidth = True

    def losses(self, x: torch.Tensor, domains: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """(sum over restarts of the loss, every term per restart (R,), latents (R, B, z))."""
        h, x_hat, target = self.autoencoder.forward_restarts(x)
        recon = (x_hat - target).square().flatten(1).mean(1)
        h_s = h[..., : self.z_dim_stable]
        terms = (self.scale_free_terms if self.penalties.standardize else self.penalty_terms)(h_s, domains)
        weights = self.penalties.weights
        penalty = sum((weights[n] * v for n, v in terms.items() if n != "hinge"), torch.zeros_like(recon))
        loss = recon + self.penalties.scale * penalty
        if "hinge" in terms:
            loss = loss + self.penalties.hinge_weight * terms["hinge"]
        parts = {"loss": loss, "recon_mse": recon, "penalty": penalty, **terms}
        return loss.sum(), parts, h

    @property
    def chosen_restart(self) -> int:
        return int(self.autoencoder.chosen)

    # -- Lightning hooks ---------------------------------------------------------------------
    # Optimisation is manual: each training item is a chunk of consecutive minibatches (for flat
    # data the whole shuffled epoch, see data/datamodule.py) and training_step takes one Adam step
    # per minibatch. Lightning's per-item work (hooks, callbacks, batch transfer) is ~2 ms, as much
    # as a whole step of the linear model, so paying it once per epoch instead of once per step
    # saved ~3 s of the default run's ~18 s fit. The steps themselves (batches, order, clipping,
    # schedule) are unchanged: the same seed gave the same metrics before and after.
    def training_step(self, chunk, chunk_idx):
        optimizer = self.optimizers()
        scheduler = self.lr_schedulers()
        x, _, domains = chunk
        batch_size = self.trainer.datamodule.step_batch_size
        for batch_idx, (xb, db) in enumerate(zip(x.split(batch_size), domains.split(batch_size))):
            loss, parts, _ = self.losses(to_model_input(xb), db)
            if not torch.isfinite(loss):
                bad = [n for n, v in parts.items() if not torch.isfinite(v).all()]
                last = getattr(self.trainer.checkpoint_callback, "last_model_path", "")
                kept = f"the last good checkpoint is {last}" if last else "no epoch finished, so there is no checkpoint"
                raise NonFiniteLossError(
                    f"non-finite training loss at epoch {self.current_epoch}, step {self.global_step} "
                    f"(batch {batch_idx}); non-finite terms: {bad}. Lower model.optimizer.lr or set "
                    f"trainer.gradient_clip_val; {kept}."
                )
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            self.clip_per_restart(self.optim.gradient_clip_val)
            self.step_per_restart_lr(optimizer)
            if scheduler is not None and self.optim.scheduler.get("name", "plateau") == "cosine":
                scheduler.step()
            self._accumulate("train", parts, len(xb))

    def validation_step(self, batch, batch_idx):
        x, z, domains = batch
        parts, h = self.evaluation_parts(x, domains)
        self._accumulate("val", parts, len(x))
        self._val_outputs.append((h.detach(), z, domains))

    def evaluation_parts(self, x: torch.Tensor, domains: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Every loss term per restart (R,) of a held-out batch, and the latents (R, B, z)."""
        _, parts, h = self.losses(to_model_input(x), domains)
        return parts, h

    def selection_score(
        self, recon_mse: torch.Tensor, h_s: torch.Tensor, domains: torch.Tensor, mmd: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The model-selection score (R,) of a held-out split: its mean reconstruction error (R,) plus
        the weighted penalties of its stable latents h_s (R, N, d_S) with their domains (N,), all
        rows at once (see the module docstring); callers pass at most SELECTION_MAX_ROWS rows.
        ``mmd``: the MMD term (R,) when the caller has it already (selection_scores_relabelled)."""
        score = recon_mse
        names = [n for n in PENALTY_NAMES if mmd is None or n != "mmd"]
        terms = self.scale_free_terms(h_s, domains, names=names)
        if mmd is not None:
            terms["mmd"] = mmd
        for name, value in terms.items():
            score = score + self.penalties.scale * self.penalties.weights[name] * value
        return score

    def heldout_selection(self, recon_mse: torch.Tensor, outputs: list) -> torch.Tensor:
        """selection_score of a held-out split from its batches' (latents (R, B, z), domains)
        in the held-out order, on its first SELECTION_MAX_ROWS rows."""
        h = torch.cat([o[0] for o in outputs], dim=1)[:, :SELECTION_MAX_ROWS, : self.z_dim_stable]
        domains = torch.cat([o[1] for o in outputs])[:SELECTION_MAX_ROWS]
        return self.selection_score(recon_mse, h, domains)

    def selection_scores_relabelled(self, recon_mse: torch.Tensor, h: torch.Tensor, labellings: torch.Tensor) -> torch.Tensor:
        """selection_score of one copy's held-out latents h (N, z) (at most SELECTION_MAX_ROWS rows)
        under each domain labelling (P, N), as P calls of selection_score would give, with the MMD's
        kernel matrix computed once for all labellings (penalties.mmd_penalty_relabelled): (P,)."""
        h_s = h[None, :, : self.z_dim_stable]
        mmd = None
        # per_pair (the reference's estimator) is not the one-matrix sum: selection_score computes it per labelling
        if self.penalties.weights.get("mmd", 0) > 0 and not self.penalties.mmd.per_pair:
            options = {k: v for k, v in asdict(self.penalties.mmd).items() if k != "per_pair"}
            mmd = penalty_fns.mmd_penalty_relabelled(
                h_s[0], labellings, self.num_domains, reduction=self.penalties.reduction, **options
            )
        return torch.cat(
            [
                self.selection_score(recon_mse, h_s, labels, mmd=None if mmd is None else mmd[i : i + 1])
                for i, labels in enumerate(labellings)
            ]
        )

    def clip_per_restart(self, max_norm: float | None) -> None:
        """Clip the gradient norm of each restart separately, so that the copies stay independent
        (a global norm would couple them): every parameter of a model with restarts > 1 is stacked
        over the restarts (dimension 0)."""
        if not max_norm:
            return
        restarts = self.autoencoder.restarts
        if restarts == 1:
            torch.nn.utils.clip_grad_norm_(self.parameters(), float(max_norm))
            return
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        norms = torch.stack([g.reshape(restarts, -1).square().sum(1) for g in grads]).sum(0).sqrt()
        scale = (float(max_norm) / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))

    def step_per_restart_lr(self, optimizer) -> None:
        """optimizer.step(), with copy r's update scaled by model.optimizer.restart_lr_scales[r]: Adam's
        moments do not depend on the learning rate, so this is copy r trained at lr * scale[r], exactly
        (its own run at that lr, beside the others). A spread of learning rates over the restarts lets
        the selection (validation loss only) pick the rate per run: docs/polynomial.md."""
        scales = per_restart_lr_scales(self.optim.restart_lr_scales, self.autoencoder.restarts)
        if scales is None:
            optimizer.step()
            return
        params = [p for p in self.parameters() if p.grad is not None]
        before = [p.detach().clone() for p in params]
        optimizer.step()
        weight = torch.tensor(scales, dtype=params[0].dtype, device=params[0].device)
        with torch.no_grad():
            for p, start in zip(params, before):
                p.copy_(torch.lerp(start, p, weight.view(-1, *([1] * (p.dim() - 1)))))

    def _accumulate(self, stage: str, parts: dict, n: int) -> None:
        # Epoch means kept by hand and logged once per epoch: Lightning's self.log on every step
        # cost ~40% of a small model's training time.
        sums = self._epoch_sums.setdefault(stage, {"_count": 0})
        for name, value in parts.items():
            sums[name] = sums.get(name, 0.0) + value.detach() * n
        sums["_count"] += n

    def _epoch_values(self, stage: str, selection: torch.Tensor | None = None) -> dict:
        """The epoch's sample-weighted means of the chosen copy's terms, by logged name; at "val",
        with the epoch's selection score (R,), the copy with the lowest becomes the chosen one first
        (until restarts narrow)."""
        sums = self._epoch_sums.pop(stage, None)
        if not sums:
            return {}
        count = sums.pop("_count")
        means = {name: total / count for name, total in sums.items()}
        if selection is not None:
            means["selection"] = selection
        if stage == "val":
            # log(selection): early stopping on it with min_delta d stops when the score has not
            # fallen by a factor exp(d) (d = 0.01: 1%) for `patience` epochs, at any scale of the loss.
            means["log_selection"] = torch.log(means["selection"].clamp_min(1e-30))
        if stage == "val" and not self.autoencoder.only_chosen:  # the lowest selection score becomes the chosen one
            self.autoencoder.chosen.copy_(torch.argmin(means["selection"]))
        chosen = self.autoencoder.chosen_position
        return {f"{stage}/{name}": value[chosen] for name, value in means.items()}

    def _publish(self, values: dict) -> None:
        """Epoch values: to the loggers (the curves) directly, and through self.log only those a
        callback or the plateau scheduler monitors. Lightning's self.log costs ~1 ms per value
        (its result collection), ~20 values an epoch: as much as the small models' training steps."""
        if self.trainer.sanity_checking or not values:
            return
        monitored = {getattr(cb, "monitor", None) for cb in self.trainer.callbacks} | {self.optim.scheduler.get("monitor")}
        self.log_dict({k: v for k, v in values.items() if k in monitored}, logger=False)
        if self.loggers:
            row = {k: float(v) for k, v in values.items()} | {"epoch": self.current_epoch}
            for logger in self.loggers:
                logger.log_metrics(row, step=self.global_step)

    def _narrow_restarts(self) -> None:
        # After restart_selection_epochs only the chosen copy trains: the choice made at the end of
        # that epoch's validation is final. A function of the epoch alone, so a resumed run narrows
        # exactly where the uninterrupted one did (the chosen index is in the checkpoint).
        last = self.restart_selection_epochs
        self.autoencoder.only_chosen = last is not None and self.current_epoch >= last

    def on_train_epoch_start(self):
        self._narrow_restarts()

    def on_validation_epoch_start(self):
        self._narrow_restarts()

    def on_fit_end(self):
        self.autoencoder.only_chosen = False  # evaluation and later use see every copy again

    def on_train_epoch_end(self):
        self._publish(self._epoch_values("train"))

    def on_validation_epoch_end(self):
        outputs, self._val_outputs = self._val_outputs, []
        sums = self._epoch_sums.get("val")
        selection = None
        if outputs and sums:
            recon = sums["recon_mse"] / sums["_count"]
            with torch.no_grad():
                selection = self.heldout_selection(recon, [(h, d) for h, _, d in outputs])
        if selection is not None and not self.trainer.sanity_checking:
            self.last_selection = selection.detach()  # every copy's score (callbacks.WarmStartPatience)
        values = self._epoch_values("val", selection)
        if selection is not None and len(selection) > 1:  # every copy's score, for when the restarts separate
            values.update({f"val/selection_restart{r}": score for r, score in enumerate(selection)})
        if outputs:
            h = torch.cat([o[0][self.autoencoder.chosen_position] for o in outputs]).cpu().numpy()
            z = torch.cat([o[1] for o in outputs]).cpu().numpy()
            if len(h) >= 8 and np.isfinite(h).all():
                values.update({f"val/{n}": v for n, v in split_half_r2(h, z, self.z_dim_stable, self.z_dim_stable_true).items()})
        self._publish(values)
        scheduler = self.lr_schedulers()
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and not self.trainer.sanity_checking:
            monitor = self.optim.scheduler.get("monitor", "val/loss")
            if monitor in self.trainer.callback_metrics:
                scheduler.step(float(self.trainer.callback_metrics[monitor]))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.optim.lr, weight_decay=self.optim.weight_decay)
        scheduler = self.optim.scheduler
        if not scheduler.get("enabled", False):
            return opt
        # Both are stepped by hand (manual optimisation): cosine after every step, plateau after
        # every validation.
        if scheduler.get("name", "plateau") == "cosine":  # decays to 0 over trainer.max_epochs
            steps = int(self.trainer.max_epochs) * self.trainer.datamodule.steps_per_epoch
            return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))]
        options = {k: v for k, v in scheduler.items() if k not in ("enabled", "monitor", "name")}
        return [opt], [torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **options)]

    # -- inference ---------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        self.eval()
        batch_size = batch_size or (4096 if x.ndim == 2 else 256)  # images: bound the activation memory
        out = [
            self.autoencoder.encode(to_model_input(torch.from_numpy(x[i : i + batch_size])).to(self.device)).cpu().numpy()
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(out)
