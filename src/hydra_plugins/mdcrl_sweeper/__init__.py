"""mdcrl's --multirun sweeper (hydra/sweeper=checked, the default of configs/train.yaml).

Hydra's basic sweeper composes the config of every job of a batch in the main process before
launching any (validate_batch_is_legal), and the launcher composes each again where it runs. The
first pass is there to refuse a sweep that cannot compose before any run starts; composing takes
0.1-0.2 s a job, so the seed's 80-job linear commands spent 10-20 s in it, serially, each.

Whether a job composes depends on its override keys, which every job of a sweep shares, and on the
options it picks in config groups (model=..., datamodule/dataset=...), not on the values of plain
keys (z_dim=8 or 16). So this sweeper composes one job per distinct choice of config-group options
(and of hydra.* values, which Hydra's own typed nodes check), and the rest as before at launch.
It lives in the hydra_plugins namespace because Hydra only instantiates plugins from there.

Composing is not all a sweep can fail on: a value mdcrl refuses (datamodule.dataset.z_dim=8,-4)
composes fine, and used to start the first jobs before the bad one failed in its worker. So every
job's values also go through mdcrl's own checks (validation.validate_config) before the launch, on
its representative's composed config with the job's plain overrides put in: a refused value in any
job stops the sweep in one line, before any run.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf, open_dict


class GroupCheckedSweeper(BasicSweeper):
    """BasicSweeper that composes one job per distinct choice of config-group options, and checks
    every job's values with mdcrl's validation before the launch."""

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        loader = self.hydra_context.config_loader
        shapes = job_shapes(batch, loader.repository.group_exists)
        composed = {}  # shape -> the composed task config (no hydra node) of its first job
        for shape, overrides in representatives(batch, shapes).items():
            cfg = loader.load_sweep_config(master_config=self.config, sweep_overrides=list(overrides))
            with open_dict(cfg):
                cfg.pop("hydra", None)
            composed[shape] = cfg
        from mdcrl.errors import exit_on_expected_error  # here: the sweeper is imported whenever Hydra scans its plugins

        exit_on_expected_error(validate_values, [(composed[shape], plain) for shape, plain in shapes])


def job_shapes(batch: Sequence[Sequence[str]], group_exists) -> list[tuple[tuple, list]]:
    """For each job of batch: its shape (its config-group options and hydra.* values, which decide
    whether it composes) and its other, plain overrides (parsed)."""
    parser = OverridesParser.create()
    out = []
    for overrides in batch:
        parsed = parser.parse_overrides(list(overrides))
        decides = [o.key_or_group.startswith("hydra") or group_exists(o.key_or_group) for o in parsed]
        shape = tuple(o.input_line for o, d in zip(parsed, decides) if d)
        out.append((shape, [o for o, d in zip(parsed, decides) if not d]))
    return out


def representatives(batch: Sequence[Sequence[str]], shapes: list[tuple[tuple, list]]) -> dict[tuple, Sequence[str]]:
    """The first job of batch of each distinct shape (job_shapes), by shape, in batch order."""
    chosen: dict[tuple, Sequence[str]] = {}
    for overrides, (shape, _) in zip(batch, shapes):
        chosen.setdefault(shape, overrides)
    return chosen


def validate_values(jobs) -> None:
    """mdcrl's validation of each job: (its representative's composed config, its plain overrides).
    The first refused value raises ConfigError; warnings are left to the runs themselves."""
    import logging

    from mdcrl.validation import validate_config

    validation_log = logging.getLogger("mdcrl.validation")
    level = validation_log.level
    validation_log.setLevel(logging.ERROR)
    try:
        for cfg, plain in jobs:  # jobs of one shape share their plain keys: each sets all of them in place
            with open_dict(cfg):
                for override in plain:
                    if not override.is_delete():  # a deletion is every job's (they share keys): composed already
                        OmegaConf.update(cfg, override.key_or_group, override.value(), merge=False, force_add=True)
            validate_config(cfg, with_lightning=False)  # torch-free: 1.3 s less per sweep; each run checks the rest
    finally:
        validation_log.setLevel(level)
