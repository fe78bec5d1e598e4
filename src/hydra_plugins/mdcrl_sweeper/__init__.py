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
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser


class GroupCheckedSweeper(BasicSweeper):
    """BasicSweeper that checks one job per distinct choice of config-group options."""

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        super().validate_batch_is_legal(representative_jobs(batch, self.hydra_context.config_loader.repository.group_exists))


def representative_jobs(batch: Sequence[Sequence[str]], group_exists) -> list[Sequence[str]]:
    """The first job of each distinct choice of config-group options and hydra.* values in batch."""
    parser = OverridesParser.create()
    seen, chosen = set(), []
    for overrides in batch:
        parsed = parser.parse_overrides(list(overrides))
        shape = tuple(o.input_line for o in parsed if o.key_or_group.startswith("hydra") or group_exists(o.key_or_group))
        if shape not in seen:
            seen.add(shape)
            chosen.append(overrides)
    return chosen
