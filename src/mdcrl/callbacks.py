"""Callbacks: the one named in the configs (callbacks.visualization_callback), and the run clock
that every run adds (train.py)."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

from mdcrl.models.base import restart_agreement


class LatentScatterPlot(L.Callback):
    """At the end of fitting, plot each learned stable coordinate against the true stable and
    spurious latents on the validation split (plots/latents.png in the run directory). Without
    ground-truth latents (a user's own data), each learned stable coordinate against the domain:
    a stable coordinate should have the same spread in every domain."""

    def __init__(self, max_coordinates: int = 4, filename: str = "plots/latents.png"):
        self.max_coordinates = max_coordinates
        self.filename = filename

    def on_fit_end(self, trainer, pl_module):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        split = trainer.datamodule.data.splits["valid"]
        h = pl_module.encode(split.x)
        d_s, d_true = pl_module.z_dim_stable, pl_module.z_dim_stable_true
        n = min(self.max_coordinates, d_s)
        known = split.z.shape[1] > 0
        fig, axes = plt.subplots(n, 2 if known else 1, figsize=(7 if known else 3.5, 2.6 * n), squeeze=False)
        for c in range(n if not known else 0):
            axes[c, 0].scatter(split.domain, h[:, c], c=split.domain, s=3, cmap="tab20")
            axes[c, 0].set_xlabel("domain")
            axes[c, 0].set_ylabel(f"h_S[{c}]")
        for c in range(n if known else 0):
            for col, (block, title) in enumerate(((split.z[:, :d_true], "z_S"), (split.z[:, d_true:], "z_U"))):
                # Show the true coordinate of the block that correlates most with this learned one.
                corr = np.abs([np.corrcoef(h[:, c], block[:, j])[0, 1] for j in range(block.shape[1])])
                j = int(np.nanargmax(corr)) if np.isfinite(corr).any() else 0
                axes[c, col].scatter(block[:, j], h[:, c], c=split.domain, s=3, cmap="tab20")
                axes[c, col].set_xlabel(f"true {title}[{j}]")
                axes[c, col].set_ylabel(f"h_S[{c}]")
        fig.tight_layout()
        out = Path(trainer.default_root_dir) / self.filename
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=80)
        plt.close(fig)


class RunClock(L.Callback):
    """Fit time across attempts: its state (saved in every checkpoint) is the time spent up to that
    checkpoint, so that a resumed run adds its own time to that of the attempts it continues."""

    def __init__(self):
        self.earlier_s = 0.0  # time of earlier attempts, up to the checkpoint this one resumed from
        self.attempt_start = time.perf_counter()

    def elapsed_s(self) -> float:
        return self.earlier_s + time.perf_counter() - self.attempt_start

    def state_dict(self) -> dict:
        return {"elapsed_s": self.elapsed_s()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.earlier_s = float(state_dict.get("elapsed_s", 0.0))


class StopMemory(L.Callback):
    """Lightning does not save a decision to stop (trainer.should_stop) in its checkpoints. A run killed
    after early stopping or the warm start's patience ended its fit, but before its evaluation was
    written, would resume from last.ckpt and train on past that epoch (to the floor, or to
    max_epochs), and end elsewhere than the uninterrupted run. This callback saves the decision with
    every checkpoint and repeats it when the run resumes."""

    def __init__(self):
        self.trainer = None
        self.stopped_before_resume = False

    def setup(self, trainer, pl_module, stage):
        self.trainer = trainer

    def state_dict(self) -> dict:
        # Read when a checkpoint is written, after every other callback's on_validation_end (Lightning
        # runs the checkpoint callbacks last): a stop that the floor trainer.min_epochs overrides is not one.
        trainer = self.trainer
        stopped = trainer is not None and trainer.should_stop and trainer.current_epoch + 1 >= (trainer.fit_loop.min_epochs or 0)
        return {"stopped": bool(stopped)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.stopped_before_resume = bool(state_dict.get("stopped", False))

    def on_train_start(self, trainer, pl_module):
        if self.stopped_before_resume:
            trainer.fit_loop.min_epochs = 0
            trainer.should_stop = True


class WarmStartPatience(L.Callback):
    """What a warm-started run (model.init=moment) decides after `patience` epochs (model.warm_start_patience):

    - no epoch has scored below `bar` (the warm start's validation selection score less
      model.warm_start_margin null spreads): stop. The run ends with the untrained warm start unless a
      later epoch beats the bar, so the floor trainer.min_epochs (which exists for random starts that
      need 100 epochs) is waived for it: early stopping's patience with the warm start as its best epoch;
    - the trained warm copy (`warm_copy`) scores below every other restart by more than that margin
      (`margin_score`: margin x null spread): the choice of restart is made, and only the warm copy
      trains on (as after model.restart_selection_epochs, only earlier), as a refinement of the warm
      start: the floor is waived too, and early stopping's own rule ends it;
    - otherwise the usual rules go on, except that from then on, at any epoch at which every restart's
      stable subspace coincides with the best-scoring one's to at least `agreement`
      (model.restart_agreement, models.base.restart_agreement) the restarts have nothing left to choose
      between: the best-scoring copy trains on alone, floor waived, as above.
    The decisions (was the bar beaten, the epoch the restarts narrowed and why) are saved in the
    checkpoints, so a resumed run does what the uninterrupted one did."""

    monitor = "val/selection"  # module._publish logs the value a callback's `monitor` names

    def __init__(
        self,
        bar: float,
        patience: int,
        warm_copy: int = 0,
        margin_score: float = 0.0,
        agreement: float | None = None,
    ):
        self.bar = float(bar)
        self.patience = int(patience)
        self.warm_copy = int(warm_copy)
        self.margin_score = float(margin_score)
        self.agreement = agreement
        self.beaten = False
        self.narrowed_from: int | None = None  # the first epoch that trains one copy alone
        self.narrowed_because: str | None = None  # "warm copy leads" | "restarts agree"
        self.stopped_epoch: int | None = None
        self.last_agreement: float | None = None  # the restarts' agreement at the last check

    def on_train_epoch_start(self, trainer, pl_module):  # before the module's hook, which narrows
        if self.narrowed_from is not None:  # also after a resume (the decision is in the checkpoint)
            trainer.fit_loop.min_epochs = 0
            current = pl_module.restart_selection_epochs
            pl_module.restart_selection_epochs = self.narrowed_from if current is None else min(current, self.narrowed_from)

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        score = trainer.callback_metrics.get(self.monitor)
        if score is not None and float(score) < self.bar:
            self.beaten = True
        epoch = trainer.current_epoch + 1
        if epoch < self.patience or self.narrowed_from is not None or self.stopped_epoch is not None:
            return
        if epoch == self.patience and not self.beaten:
            trainer.fit_loop.min_epochs = 0  # the floor is for runs that train towards something
            trainer.should_stop = True
            self.stopped_epoch = trainer.current_epoch
        elif epoch == self.patience and self._warm_copy_leads(pl_module):
            self._narrow(trainer, "warm copy leads")
        elif self._restarts_agree(pl_module):
            self._narrow(trainer, "restarts agree")

    def _narrow(self, trainer, because: str) -> None:
        """Only the chosen copy (the lowest score of this validation) trains from the next epoch on."""
        self.narrowed_from = trainer.current_epoch + 1
        self.narrowed_because = because
        trainer.fit_loop.min_epochs = 0

    def _warm_copy_leads(self, pl_module) -> bool:
        scores = getattr(pl_module, "last_selection", None)
        if scores is None or len(scores) < 2 or pl_module.autoencoder.only_chosen:
            return False
        others = torch.cat([scores[: self.warm_copy], scores[self.warm_copy + 1 :]])
        return bool((others - scores[self.warm_copy]).min() > self.margin_score)

    def _restarts_agree(self, pl_module) -> bool:
        last = pl_module.restart_selection_epochs
        narrowing_anyway = last is not None and pl_module.current_epoch + 1 >= last
        if self.agreement is None or pl_module.autoencoder.only_chosen or narrowing_anyway:
            return False
        autoencoder = pl_module.autoencoder
        self.last_agreement = restart_agreement(autoencoder, pl_module.z_dim_stable, int(autoencoder.chosen))
        return self.last_agreement is not None and self.last_agreement >= self.agreement

    def state_dict(self) -> dict:
        return {
            "beaten": self.beaten,
            "narrowed_from": self.narrowed_from,
            "narrowed_because": self.narrowed_because,
            "stopped_epoch": self.stopped_epoch,
            "last_agreement": self.last_agreement,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self.beaten = bool(state_dict.get("beaten", False))
        self.narrowed_from = state_dict.get("narrowed_from")
        self.stopped_epoch = state_dict.get("stopped_epoch")
        self.narrowed_because = state_dict.get("narrowed_because")
        self.last_agreement = state_dict.get("last_agreement")
