"""The training module: reconstruction + penalty_weight * invariance penalties + hinge (SPEC 3)."""

from __future__ import annotations

import warnings

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from mdcrl import penalties
from mdcrl.data.datamodule import to_model_input
from mdcrl.metrics import split_half_r2


class NonFiniteLossError(FloatingPointError):
    """Raised by a training step whose loss is NaN or inf; the last good checkpoint is kept."""


class MultiDomainAutoencoder(L.LightningModule):
    def __init__(
        self,
        autoencoder: torch.nn.Module,
        num_domains: int,
        z_dim_invariant: int,
        z_dim_invariant_true: int,
        penalty_weight: float = 1.0,
        penalty_criterion: dict | None = None,
        minmax_loss: dict | None = None,
        mmd_loss: dict | None = None,
        stddev_loss: dict | None = None,
        hinge_loss_weight: float = 0.0,
        hinge_loss: dict | None = None,
        optimizer: dict | None = None,
        scheduler: dict | None = None,
    ):
        super().__init__()
        self.autoencoder = autoencoder
        self.num_domains = num_domains
        self.z_dim_invariant = z_dim_invariant
        self.z_dim_invariant_true = z_dim_invariant_true
        self.penalty_weight = penalty_weight
        self.penalty_criterion = dict(penalty_criterion or {"minmax": 1.0})
        self.minmax_loss = dict(minmax_loss or {})
        self.mmd_loss = dict(mmd_loss or {})
        self.stddev_loss = dict(stddev_loss or {})
        self.hinge_loss_weight = hinge_loss_weight
        self.hinge_loss = dict(hinge_loss or {})
        self.optimizer_cfg = dict(optimizer or {"lr": 1e-3})
        self.scheduler_cfg = dict(scheduler or {})
        self._warned_bandwidth = False
        self._val_outputs: list = []
        self._epoch_sums: dict = {}

    # -- objective ---------------------------------------------------------------------------
    def penalty_terms(self, h_s: torch.Tensor, domains: torch.Tensor) -> dict[str, torch.Tensor]:
        """The enabled (weight > 0) penalties, unweighted, by name."""
        k = self.num_domains
        terms = {}
        if self.penalty_criterion.get("minmax", 0) > 0:
            terms["minmax"] = penalties.minmax_penalty(h_s, domains, k, **self.minmax_loss)
        if self.penalty_criterion.get("mmd", 0) > 0:
            self._check_bandwidth(h_s)
            terms["mmd"] = penalties.mmd_penalty(h_s, domains, k, **self.mmd_loss)
        if self.penalty_criterion.get("stddev", 0) > 0:
            terms["stddev"] = penalties.stddev_penalty(h_s, domains, k, **self.stddev_loss)
        if self.hinge_loss_weight > 0:
            terms["hinge"] = penalties.hinge_loss(h_s, domains, k, **self.hinge_loss)
        return terms

    def _check_bandwidth(self, h_s):
        if self._warned_bandwidth:
            return
        typical = penalties.mmd_kernel_vanishes(h_s.detach(), **self.mmd_loss)
        if typical is not None:
            warnings.warn(
                f"model.mmd_loss.fix_sigma={self.mmd_loss.get('fix_sigma')} is far below the typical squared "
                f"distance between latents: typical kernel value {typical:.1e}, so the MMD penalty is nearly "
                "constant with a vanishing gradient. Use model.mmd_loss.fix_sigma=null (mean-distance bandwidth).",
                stacklevel=2,
            )
        self._warned_bandwidth = True

    def losses(self, x: torch.Tensor, domains: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        h, x_hat = self.autoencoder(x)
        recon = F.mse_loss(x_hat, x)
        terms = self.penalty_terms(h[:, : self.z_dim_invariant], domains)
        penalty = sum((self.penalty_criterion[n] * v for n, v in terms.items() if n != "hinge"), recon.new_zeros(()))
        loss = recon + self.penalty_weight * penalty
        if "hinge" in terms:
            loss = loss + self.hinge_loss_weight * terms["hinge"]
        parts = {"loss": loss, "recon_mse": recon, "penalty": penalty, **terms}
        return loss, parts, h

    # -- Lightning hooks ---------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        x, _, domains = batch
        loss, parts, _ = self.losses(x, domains)
        if not torch.isfinite(loss):
            bad = [n for n, v in parts.items() if not torch.isfinite(v)]
            raise NonFiniteLossError(
                f"non-finite training loss at epoch {self.current_epoch}, step {self.global_step} "
                f"(batch {batch_idx}); non-finite terms: {bad}. Lower model.optimizer.lr or set "
                "trainer.gradient_clip_val; the last good checkpoint is kept in the run's checkpoints/."
            )
        self._accumulate("train", parts, len(x))
        return loss

    def validation_step(self, batch, batch_idx):
        x, z, domains = batch
        _, parts, h = self.losses(x, domains)
        self._accumulate("val", parts, len(x))
        self._val_outputs.append((h.detach().cpu().numpy(), z.cpu().numpy()))

    def _accumulate(self, stage: str, parts: dict, n: int) -> None:
        # Epoch means kept by hand and logged once per epoch: Lightning's self.log on every step
        # cost ~40% of a small model's training time.
        sums = self._epoch_sums.setdefault(stage, {"_count": 0})
        for name, value in parts.items():
            sums[name] = sums.get(name, 0.0) + value.detach() * n
        sums["_count"] += n

    def _log_epoch(self, stage: str) -> None:
        sums = self._epoch_sums.pop(stage, None)
        if sums:
            count = sums.pop("_count")
            self.log_dict({f"{stage}/{name}": total / count for name, total in sums.items()})

    def on_train_epoch_end(self):
        self._log_epoch("train")

    def on_validation_epoch_end(self):
        self._log_epoch("val")
        if not self._val_outputs:
            return
        h = np.concatenate([o[0] for o in self._val_outputs])
        z = np.concatenate([o[1] for o in self._val_outputs])
        self._val_outputs.clear()
        if len(h) >= 8 and np.isfinite(h).all():
            curves = split_half_r2(h, z, self.z_dim_invariant, self.z_dim_invariant_true)
            self.log_dict({f"val/{n}": v for n, v in curves.items()})

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), **self.optimizer_cfg)
        if not self.scheduler_cfg.get("enabled", False):
            return opt
        options = {k: v for k, v in self.scheduler_cfg.items() if k not in ("enabled", "monitor")}
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **options)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "monitor": self.scheduler_cfg.get("monitor", "val/loss")}}

    # -- inference ---------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        self.eval()
        batch_size = batch_size or (4096 if x.ndim == 2 else 256)  # images: bound the activation memory
        out = [
            self.autoencoder.encoder(to_model_input(torch.from_numpy(x[i : i + batch_size])).to(self.device)).cpu().numpy()
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(out)
