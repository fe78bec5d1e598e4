"""The seed README's commands are the user's contract: they must compose and run verbatim."""

import json
import shlex
import subprocess
import sys

import pytest
from conftest import ROOT, compose_config, seed_commands
from hydra.core.override_parser.overrides_parser import OverridesParser

from mdcrl.validation import validate_config

LINEAR = [c for c in seed_commands() if "datamodule.dataset.linear=True" in c]


def expand_sweeps(command: str) -> list[list[str]]:
    """Split a command as bash would and expand its sweeps: one override list per value of each
    swept key (the other sweeps at their first value)."""
    words = shlex.split(command)
    assert words[:2] == ["python", "run_training.py"]
    overrides = [w for w in words[2:] if w != "--multirun"]
    parsed = OverridesParser.create().parse_overrides(overrides)
    base = [
        o.input_line if not o.is_sweep_override() else f"{o.get_key_element()}={next(o.sweep_string_iterator())}" for o in parsed
    ]
    variants = [base]
    for index, o in enumerate(parsed):
        if o.is_sweep_override():
            for value in list(o.sweep_string_iterator())[1:]:
                variant = list(base)
                variant[index] = f"{o.get_key_element()}={value}"
                variants.append(variant)
    return variants


def test_six_linear_commands_present():
    assert len(LINEAR) == 6


@pytest.mark.parametrize("command", LINEAR, ids=range(len(LINEAR)))
def test_linear_seed_command_composes(command):
    variants = expand_sweeps(command)
    assert len(variants) == 1 + 3 + 3 + 4  # z_dim, num_domains and seed sweeps
    for overrides in variants:
        cfg = compose_config(overrides, tiny=False)
        validate_config(cfg)
        assert cfg.datamodule.dataset.linear is True
        assert "visualization_callback" not in cfg.callbacks
        assert cfg.logger.wandb.tags[1] in ("minmax", "mmd", "minmax-mmd")


SHRINK = (
    " datamodule.dataset.z_dim=8 datamodule.dataset.num_domains=2 seed=1235 trainer.max_epochs=3"
    " datamodule.dataset.num_samples.train=1000 datamodule.dataset.num_samples.valid=200"
    " datamodule.dataset.num_samples.test=200 nonlinear_probe=false trainer.enable_progress_bar=false"
)


def test_linear_seed_command_runs_verbatim_end_to_end(tmp_path):
    # Extra overrides go before the trailing --multirun (argparse takes no overrides after it).
    assert LINEAR[3].endswith(" --multirun")
    command = LINEAR[3][: -len(" --multirun")] + SHRINK + f" hydra.sweep.dir={tmp_path} --multirun"
    result = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]  # one job: one run-<id> directory
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["domain_acc_h"] <= 1.0
    info = json.loads((run_dir / "run.json").read_text())
    assert info["tags"] == ["linear-corr", "mmd"] and info["status"] == "finished"


def test_default_command_prints_metrics_table(tmp_path):
    result = subprocess.run(
        [sys.executable, "run_training.py", "trainer.max_epochs=3", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for key in ("r2_zinv_from_hinv", "r2_zsp_from_hinv", "domain_acc_hinv", "mcc", "recon_mse"):
        assert key in result.stdout
    assert (tmp_path / "plots" / "latents.png").exists()


def test_bad_override_on_command_line_names_the_setting(tmp_path):
    result = subprocess.run(
        [sys.executable, "run_training.py", "datamodule.dataset.num_domains=1", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode != 0
    assert "datamodule.dataset.num_domains=1 must be >= 2" in result.stderr + result.stdout
    assert not (tmp_path / "metrics.json").exists()


def test_linear_grid_script_runs_the_six_commands_verbatim():
    script = (ROOT / "scripts" / "reproduce_linear_grid.sh").read_text()
    for command in LINEAR:
        assert command[: -len(" --multirun")] + ' "${EXTRA[@]}" --multirun' in script
