"""Typed settings: the Hydra layout round-trips, one list of presentation settings, one copy of defaults."""

from pathlib import Path

import pytest
from conftest import CONFIG_DIR, compose_config
from omegaconf import OmegaConf

from mdcrl import InvariantAutoencoder
from mdcrl.resolvers import presentation_keys
from mdcrl.settings import PRESENTATION_SETTINGS, RunSettings, default_settings


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["model=balls", "datamodule=md_balls"],
        ["model/autoencoder=poly_ae", "datamodule.dataset.linear=false"],
        ["model/objective=reference", "model.mmd_loss.fix_sigma=null"],
        ["datamodule=from_file", "datamodule.path=x.csv"],
    ],
)
def test_hydra_layout_round_trips(overrides):
    cfg = compose_config(overrides, tiny=False)
    settings = RunSettings.from_config(cfg)
    assert RunSettings.from_config(settings.to_config()) == settings
    # every key of the composed config survives (config.yaml of an estimator run reads like a CLI run's)
    plain = OmegaConf.to_container(cfg, resolve=True)
    again = OmegaConf.to_container(settings.to_config(), resolve=True)
    assert plain["model"] == again["model"] and plain["datamodule"] == again["datamodule"]


def test_presentation_settings_change_neither_identity_nor_run_id():
    base = RunSettings.from_config(compose_config([], tiny=False))
    shown = RunSettings.from_config(
        compose_config(
            ["print_metrics=false", "trainer.enable_progress_bar=false", "num_threads=1", "check_memory=false"], tiny=False
        )
    )
    assert shown.identity() == base.identity()
    assert RunSettings.from_config(compose_config(["seed=2"], tiny=False)).identity() != base.identity()
    assert presentation_keys()[: len(PRESENTATION_SETTINGS)] == list(PRESENTATION_SETTINGS)
    assert "exclude_keys: ${mdcrl_presentation_keys:}" in Path(CONFIG_DIR, "train.yaml").read_text()


def test_estimator_defaults_are_the_packaged_ones():
    packaged = default_settings("from_file", "linear_ae")
    settings = InvariantAutoencoder()._settings(z_dim=8, z_dim_stable=4, seed=0)
    assert settings.data.source == {k: packaged.data.source[k] for k in ("valid_fraction", "test_fraction", "standardize")}
    assert settings.penalties == packaged.penalties and settings.optim == packaged.optim
    assert settings.trainer.max_epochs == packaged.trainer.max_epochs and settings.model.restarts == packaged.model.restarts


def test_full_budget_experiment_restores_the_previous_training_budget():
    fast, full = compose_config(tiny=False), compose_config(["experiment=full_budget"], tiny=False)
    assert fast.model.restart_selection_epochs == 100 and fast.trainer.min_epochs == 100
    assert fast.callbacks.early_stopping.monitor == "val/log_selection"
    settings = RunSettings.from_config(full)
    assert settings.model.restart_selection_epochs is None and settings.trainer.options["min_epochs"] == 0
    stop = settings.trainer.callbacks["early_stopping"]
    assert (stop["monitor"], stop["patience"], stop["min_delta"]) == ("val/selection", 100, 0.0)


def test_a_run_made_before_a_setting_existed_has_the_identity_of_that_settings_default():
    # a run directory's config.yaml from before datamodule.dataset.overlap_redraw existed: it still
    # resumes under today's config, whose default computes the same; another value is another run
    cfg = compose_config(["model=balls", "datamodule=md_balls"], tiny=False)
    today = RunSettings.from_config(cfg).identity()
    old = OmegaConf.to_container(cfg, resolve=True)
    del old["datamodule"]["dataset"]["overlap_redraw"]
    assert RunSettings.from_config(OmegaConf.create(old)).identity() == today
    other = compose_config(["model=balls", "datamodule=md_balls", "datamodule.dataset.overlap_redraw=spurious"], tiny=False)
    assert RunSettings.from_config(other).identity() != today
    # and from before the domain_means penalty: every run of the linear grid, for one
    cfg = compose_config(tiny=False)
    today = RunSettings.from_config(cfg).identity()
    old = OmegaConf.to_container(cfg, resolve=True)
    del old["model"]["penalty_criterion"]["domain_means"]
    assert RunSettings.from_config(OmegaConf.create(old)).identity() == today
    assert RunSettings.from_config(compose_config(["model.penalty_criterion.domain_means=1."], tiny=False)).identity() != today


def test_a_step_batch_size_of_the_whole_batch_is_the_same_run_as_none():
    # poly_ae sets model.optimizer.step_batch_size=256 beside its loader batch of 256: runs made
    # before the setting existed (step = batch) must still resume, and the seed's batch of 1024 is another run.
    poly = ["model/autoencoder=poly_ae", "datamodule.dataset.linear=false"]
    identity = lambda extra: RunSettings.from_config(compose_config([*poly, *extra], tiny=False)).identity()  # noqa: E731
    assert identity([]) == identity(["model.optimizer.step_batch_size=null"])
    seed_batch = ["datamodule.batch_size=1024"]
    assert identity(seed_batch) != identity([*seed_batch, "model.optimizer.step_batch_size=null"])


def test_restart_lr_scales_are_kept_as_configured_and_compared_per_copy():
    # config.yaml keeps the factors as typed ([1.0, 0.5]); a run saved with them written out per copy
    # (8 values, as runs made before this change were) is the same run, and so is [1.0] against null
    poly = ["model/autoencoder=poly_ae", "datamodule.dataset.linear=false"]
    settings = lambda extra: RunSettings.from_config(compose_config([*poly, *extra], tiny=False))  # noqa: E731
    assert settings([]).optim.restart_lr_scales == (1.0, 0.5)
    expanded = settings(["model.optimizer.restart_lr_scales=[1,1,1,1,0.5,0.5,0.5,0.5]"])
    assert expanded.identity() == settings([]).identity()
    assert expanded.identity()["model"]["optimizer"]["restart_lr_scales"] == [1.0] * 4 + [0.5] * 4
    assert (
        settings(["model.optimizer.restart_lr_scales=[1.0]"]).identity()
        == settings(["model.optimizer.restart_lr_scales=null"]).identity()
    )
    assert settings(["model.optimizer.restart_lr_scales=[1.0,0.25]"]).identity() != settings([]).identity()
