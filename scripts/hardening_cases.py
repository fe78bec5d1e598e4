"""Try bad inputs, kills and tampered files the way a user (or an attacker) would, and classify what
happens. Prints a markdown table and the totals.

    python scripts/hardening_cases.py [--src path/to/src] [--only name ...] > cases.md

Each case is run in a fresh process from this repository's root. Outcomes:
  clear error     exit != 0, a message naming the problem, no Python traceback
  N-line error    exit != 0, no traceback, but N lines to read (Hydra's own messages)
  traceback       exit != 0 with a Python traceback (the message may still be good)
  accepted        the bad input was accepted silently (or a wrong value was recorded)
  crash           valid input that failed
  data lost       earlier results were deleted or replaced
  ok              valid input that worked / an attack that was refused with a clear error
``--src`` runs the cases against another checkout's sources (to measure the "before" column).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "datamodule.dataset.num_samples.train=1200",
    "datamodule.dataset.num_samples.valid=400",
    "datamodule.dataset.num_samples.test=400",
    "datamodule.batch_size=256",
    "trainer.max_epochs=3",
    "trainer.enable_progress_bar=false",
    "print_metrics=false",
    "nonlinear_probe=false",
]


class Env:
    def __init__(self, src: str | None, tmp: Path):
        self.env = dict(os.environ, PYTHONPATH=src or "", MDCRL_FULL_ERROR="", HYDRA_FULL_ERROR="")
        self.tmp = tmp

    def cli(self, *overrides, run_dir=None, tiny=True, timeout=300):
        run_dir = run_dir or self.tmp / f"run-{time.time_ns()}"
        args = [sys.executable, "run_training.py", *(TINY if tiny else []), *overrides, f"hydra.run.dir={run_dir}"]
        p = subprocess.run(args, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout + p.stderr, Path(run_dir)

    def py(self, code, timeout=300):
        p = subprocess.run(
            [sys.executable, "-c", code], cwd=self.tmp, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        return p.returncode, p.stdout + p.stderr

    def report(self, *args):
        p = subprocess.run(
            [sys.executable, "-m", "mdcrl.report", *map(str, args)],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return p.returncode, p.stdout + p.stderr


def cli_error(rc, out):
    if rc == 0:
        return "accepted"
    if rc < 0 or rc == 137:
        return "killed by the OS (out of memory)"
    if "Traceback" in out:
        return "traceback"
    lines = [ln for ln in message_lines(out) if "[WARNING]" not in ln]  # logged warnings are not the error
    return "clear error" if len(lines) == 1 else f"{len(lines)}-line error"


def message_lines(out):
    """The output's non-empty lines, without Python's warnings."""
    return [ln for ln in out.strip().splitlines() if ln.strip() and "Warning" not in ln]


def last_line(out):
    lines = message_lines(out)
    return lines[-1][:150] if lines else ""


# -- data files ---------------------------------------------------------------------------------
def mixing_csv(path: Path, n=1200, labels=None, latents=True):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    z = rng.uniform(-1, 1, (n, 4))
    dom = np.arange(n) % 4
    z[:, 2:] += dom[:, None]
    x = z @ rng.normal(size=(4, 8))
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(8)])
    frame["domain"] = labels if labels is not None else dom
    if latents:
        for j in range(4):
            frame[f"z{j}"] = z[:, j]
    frame.to_csv(path, index=False)
    return path


def stage1(env: Env):
    """A finished stage-1 run with encodings."""
    rc, out, run_dir = env.cli("model.save_encoded_data=true")
    assert rc == 0, out
    return run_dir


def edit_metadata(run_dir: Path, edit) -> Path:
    import shutil

    copy = run_dir.parent / f"edited-{time.time_ns()}"
    shutil.copytree(run_dir, copy)
    meta = copy / "encoded" / "metadata.json"
    m = json.loads(meta.read_text())
    edit(m, copy)
    meta.write_text(json.dumps(m))
    return copy


def nan_zhat(m, copy):
    import numpy as np
    from safetensors.numpy import load_file, save_file

    from mdcrl.io import sha256_file

    path = copy / "encoded" / "train.safetensors"
    arrays = load_file(str(path))
    arrays["z_hat"][0, 0] = np.nan
    save_file(arrays, str(path))
    m["splits"]["train"]["sha256"] = sha256_file(path)


STAGE2 = [
    "datamodule=mixing_encoded",
    "model=mixing_md_encoded_autoencoder",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "print_metrics=false",
    "nonlinear_probe=false",
]


# -- the cases ----------------------------------------------------------------------------------
def bad_override(override):
    def case(env):
        rc, out, run_dir = env.cli(override)
        result = cli_error(rc, out)
        if result == "clear error" and run_dir.exists():
            result += " (left a run dir)"
        return result, last_line(out)

    return case


def silently_truncated(override, key_path):
    def case(env):
        rc, out, run_dir = env.cli(override)
        if rc == 0:
            return "accepted", f"trained; config.yaml records {key_path}=" + str(_yaml_get(run_dir / "config.yaml", key_path))
        return cli_error(rc, out), last_line(out)

    return case


def _yaml_get(path, dotted):
    import yaml

    node = yaml.safe_load(Path(path).read_text())
    for part in dotted.split("."):
        node = node[part]
    return node


def remote_checkpoint(env):
    rc, out, run_dir = env.cli("ckpt_path=http://127.0.0.1:9/model.ckpt")
    return ("ok" if "URL" in out and "Traceback" not in out else cli_error(rc, out)), last_line(out)


def own_data_without_latents(env):
    path = mixing_csv(env.tmp / f"nolat-{time.time_ns()}.csv", latents=False)
    rc, out, run_dir = own_data_cli(env, path)
    ok = rc == 0 and (run_dir / "metrics.json").exists()
    return ("ok" if ok else "crash"), last_line(out)


def own_data_cli(env, path):
    """A short from_file run without ground-truth latents."""
    return env.cli(
        "datamodule=from_file",
        f"datamodule.path={path}",
        "model.z_dim=4",
        "model.z_dim_invariant=2",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "print_metrics=false",
        tiny=False,
    )


def string_domains_single_row(env):
    import numpy as np

    labels = np.array(["site-a", "site-b", "site-c", "site-d"])[np.arange(1200) % 4].astype(object)
    labels[0] = "lonely"
    path = mixing_csv(env.tmp / f"str-{time.time_ns()}.csv", labels=labels, latents=False)
    rc, out, _ = own_data_cli(env, path)
    return cli_error(rc, out), last_line(out)


def nan_domains(env):
    import numpy as np

    labels = (np.arange(1200) % 4).astype(float)
    labels[5] = np.nan
    path = mixing_csv(env.tmp / f"nan-{time.time_ns()}.csv", labels=labels, latents=False)
    rc, out, _ = own_data_cli(env, path)
    return cli_error(rc, out), last_line(out)


def header_only_csv(env):
    path = env.tmp / "header.csv"
    path.write_text("x0,x1,domain\n")
    rc, out, _ = env.cli(
        "datamodule=from_file", f"datamodule.path={path}", "model.z_dim=2", "model.z_dim_invariant=1", tiny=False
    )
    result = cli_error(rc, out)
    if result == "clear error" and "no rows" not in out:
        result = "clear error (wrong reason)"
    return result, last_line(out)


def edited_csv_after_finish(env):
    path = mixing_csv(env.tmp / f"edit-{time.time_ns()}.csv")
    args = [
        "datamodule=from_file",
        f"datamodule.path={path}",
        "datamodule.latent_columns=[z0,z1,z2,z3]",
        "datamodule.z_dim_invariant_true=2",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "print_metrics=false",
    ]
    run_dir = env.tmp / f"edited-{time.time_ns()}"
    rc, out, _ = env.cli(*args, run_dir=run_dir, tiny=False)
    assert rc == 0, out
    before = (run_dir / "metrics.json").read_text()
    mixing_csv(path, n=1600)
    rc, out, _ = env.cli(*args, run_dir=run_dir, tiny=False)
    if rc == 0:
        return "accepted", "re-run said finished/skipped with the old data" if (
            run_dir / "metrics.json"
        ).read_text() == before else "re-ran"
    return cli_error(rc, out), last_line(out)


def stage2_case(edit):
    def case(env):
        run_dir = edit_metadata(env.stage1, edit)
        rc, out, _ = env.cli(*STAGE2, f"run_path={run_dir}", tiny=False)
        return cli_error(rc, out), last_line(out)

    return case


def run_dir_inside_stage1(env):
    before = sorted(p.name for p in env.stage1.iterdir())
    rc, out, _ = env.cli(*STAGE2, f"run_path={env.stage1}", run_dir=env.stage1 / "stage2", tiny=False)
    after = sorted(p.name for p in env.stage1.iterdir())
    result = cli_error(rc, out)
    if after != before:
        result += f" (wrote {sorted(set(after) - set(before))} into stage 1)"
    return result, last_line(out)


def validation_failure_leaves_nothing(env):
    rc, out, run_dir = env.cli("datamodule.dataset.num_domains=1")
    left = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*")) if run_dir.exists() else None
    return ("ok" if rc != 0 and left is None else f"{cli_error(rc, out)}; left {left}"), last_line(out)


def file_modes(env):
    rc, out, run_dir = env.cli()
    modes = {
        p.name: oct(p.stat().st_mode & 0o777) for p in (run_dir / "metrics.json", run_dir / "run.json", run_dir / "config.yaml")
    }
    return ("ok" if all(m == "0o644" for m in modes.values()) else "unreadable files"), str(modes)


def _longer_run(env, run_dir, extra=()):
    args = [
        sys.executable,
        "run_training.py",
        "datamodule.dataset.num_samples.train=20000",
        "datamodule.batch_size=256",
        "trainer.max_epochs=25",
        "callbacks.early_stopping=null",
        "trainer.enable_progress_bar=false",
        "print_metrics=false",
        "nonlinear_probe=false",
        *extra,
        f"hydra.run.dir={run_dir}",
    ]
    return args


def _kill_after(env, args, run_dir, min_rows=30):
    p = subprocess.Popen(
        args, cwd=ROOT, env=env.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    csv = run_dir / "csv" / "metrics.csv"
    deadline = time.time() + 240
    while time.time() < deadline and p.poll() is None:
        if (run_dir / "checkpoints" / "last.ckpt").exists() and csv.exists() and len(csv.read_text().splitlines()) > min_rows:
            break
        time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    return csv


def kill_and_resume(env):
    """Kill a run mid-way, re-run the same command: curve rows kept, same metrics as uninterrupted."""
    run_dir = env.tmp / f"killed-{time.time_ns()}"
    args = _longer_run(env, run_dir)
    csv = _kill_after(env, args, run_dir)
    epochs_before = _csv_epochs(csv)
    p = subprocess.run(args, cwd=ROOT, env=env.env, capture_output=True, text=True)
    if p.returncode != 0:
        return "crash", last_line(p.stdout + p.stderr)
    epochs_after = _csv_epochs(csv)
    lost = sorted(set(epochs_before) - set(epochs_after))
    ref_dir = env.tmp / f"uninterrupted-{time.time_ns()}"
    subprocess.run(_longer_run(env, ref_dir), cwd=ROOT, env=env.env, capture_output=True, text=True, check=True)
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, ref_dir))
    same = a["recon_mse"] == b["recon_mse"] and a["r2_zinv_from_hinv"] == b["r2_zinv_from_hinv"]
    detail = (
        f"epochs in csv before kill {min(epochs_before, default=None)}-{max(epochs_before, default=None)}, after resume "
        f"{min(epochs_after, default=None)}-{max(epochs_after, default=None)}; recon_mse {a['recon_mse']:.5f} vs "
        f"uninterrupted {b['recon_mse']:.5f}"
    )
    if lost:
        return "data lost", detail
    return ("ok" if same else "differs from uninterrupted"), detail


def _csv_epochs(csv: Path):
    import pandas as pd

    if not csv.exists():
        return []
    frame = pd.read_csv(csv)
    return sorted(set(frame["epoch"].dropna().astype(int))) if "epoch" in frame else []


def truncated_last_ckpt(env):
    run_dir = env.tmp / f"trunc-{time.time_ns()}"
    args = _longer_run(env, run_dir)
    csv = _kill_after(env, args, run_dir)
    rows = len(csv.read_text().splitlines())
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    p = subprocess.run(args, cwd=ROOT, env=env.env, capture_output=True, text=True)
    out = p.stdout + p.stderr
    csv_rows = len(csv.read_text().splitlines()) if csv.exists() else 0
    kept = any(
        "metrics" in q.name and q.suffix == ".csv" and len(q.read_text().splitlines()) >= rows for q in run_dir.rglob("*.csv")
    )
    if not kept:
        return "data lost", f"csv rows {rows} -> {csv_rows}; " + last_line(out)
    if p.returncode == 0:
        return "ok", "started fresh, old files kept: " + last_line(out)
    return cli_error(p.returncode, out), last_line(out)


def report_run_dir(env, name: str, config: str) -> tuple[Path, Path]:
    """(folder for mdcrl-report, the one run directory in it, holding config.yaml)."""
    d = env.tmp / f"{name}-{time.time_ns()}"
    run = d / "run"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(config)
    return d, run


def report_case(kind):
    def case(env):
        d, run = report_run_dir(env, f"report-{kind}", "seed: 1\n")
        if kind == "list":
            (run / "metrics.json").write_text("[1, 2, 3]")
        elif kind == "string":
            (run / "metrics.json").write_text('{"r2_zinv_from_hinv": "high"}')
        else:
            (run / "metrics.json").write_text('{"r2_zinv_from_hinv": 0.5}')
        out_arg = d / "a-file"
        out_arg.write_text("not a directory")
        rc, out = env.report(d, "--out", out_arg if kind == "out-file" else d / "report")
        report = d / "report" / "report.md"
        if rc == 0 and report.exists() and "## Problems" in report.read_text():
            problem = [ln for ln in report.read_text().splitlines() if "metrics.json" in ln]
            return "ok", "listed under Problems: " + (problem[0] if problem else "")
        return cli_error(rc, out), last_line(out)

    return case


EST = (
    "import numpy as np; from mdcrl import InvariantAutoencoder as E; rng=np.random.default_rng(0)\n"
    "X=rng.normal(size=(400,6)); D=np.arange(400)%4\n"
    # the parameter names before and after the estimator's redesign
    "S = 'z_dim_stable' if 'z_dim_stable' in E.__init__.__code__.co_varnames else 'z_dim_invariant'\n"
)


def est_case(code, expect_error=True):
    def case(env):
        rc, out = env.py(EST + code)
        if rc == 0:
            return ("accepted" if expect_error else "ok"), last_line(out)
        kind = last_line(out).split(":")[0]
        if kind in (
            "AttributeError",
            "TypeError",
            "IndexError",
            "KeyError",
            "RuntimeError",
            "MemoryError",
            "numpy._core._exceptions._ArrayMemoryError",
        ):
            return "crash", last_line(out)
        return ("clear error" if expect_error else "crash"), last_line(out)

    return case


TAMPER = (
    EST
    + """
import json, pathlib, sys
seed = {'random_state': 0} if 'random_state' in E.__init__.__code__.co_varnames else {'seed': 0}
e = E(z_dim=4, **{S: 2}, max_epochs=2, **seed)
e.fit(X, D); p = pathlib.Path('est'); e.save(p)
"""
)


def tamper_case(edit):
    return est_case(TAMPER + edit + "\nE.load(p).transform(X)")


# -- second round (docs/hardening.md) -------------------------------------------------------------
def warned(override, words):
    """A setting that runs but probably does not do what was meant: 'warned' if a warning line says so."""

    def case(env):
        rc, out, _ = env.cli(override)
        said = [ln for ln in out.splitlines() if "WARNING" in ln and words in ln]
        if rc != 0:
            return cli_error(rc, out), last_line(out)
        return ("warned" if said else "accepted"), (said[0].split(" - ", 1)[-1][:150] if said else last_line(out))

    return case


def two_launchers(env):
    """The same run started twice at once into one directory: one writer, the other leaves it alone."""
    run_dir = env.tmp / f"twice-{time.time_ns()}"
    args = _longer_run(env, run_dir)
    first = subprocess.Popen(args, cwd=ROOT, env=env.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (run_dir / "run.json").exists():
        time.sleep(0.2)
    second = subprocess.run(args, cwd=ROOT, env=env.env, capture_output=True, text=True)
    first.wait()
    import pandas as pd

    rows = pd.read_csv(run_dir / "csv" / "metrics.csv")
    epochs = rows["epoch"].dropna().astype(int).tolist()
    clean = epochs == sorted(epochs) and len(epochs) == 2 * len(set(epochs))  # one train and one val row per epoch
    said = "being written by" in second.stdout + second.stderr
    return ("ok" if clean and said else "data lost"), f"second launcher: {last_line(second.stdout + second.stderr)}"


def foreign_checkpoint(env):
    """ckpt_path = another finished run's last.ckpt at max_epochs: never evaluated with that run's best.ckpt."""
    rc, out, first = env.cli()
    rc, out, second = env.cli(f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}")
    if rc != 0:
        return cli_error(rc, out), last_line(out)
    best = json.loads((second / "run.json").read_text()).get("best_checkpoint") or ""
    return ("accepted" if best.startswith(str(first)) else "ok"), f"best_checkpoint: {best or None}"


def nan_checkpoint(env):
    import torch

    rc, out, first = env.cli()
    state = torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)
    state["state_dict"] = {
        k: v.float().fill_(float("nan")) if v.is_floating_point() else v for k, v in state["state_dict"].items()
    }
    torch.save(state, env.tmp / "nan.ckpt")
    rc, out, _ = env.cli(f"ckpt_path={env.tmp / 'nan.ckpt'}")
    return ("accepted" if rc == 0 else cli_error(rc, out)), last_line(out)


def encoding_linked_to_device(env):
    import shutil

    copy = env.tmp / f"devlink-{time.time_ns()}"
    shutil.copytree(env.stage1, copy)
    (copy / "encoded" / "train.safetensors").unlink()
    (copy / "encoded" / "train.safetensors").symlink_to("/dev/zero")
    try:
        rc, out, _ = env.cli(*STAGE2, f"run_path={copy}", tiny=False, timeout=60)
    except subprocess.TimeoutExpired:
        return "hangs", "still reading after 60 s"
    return cli_error(rc, out), last_line(out)


def deep_metadata(env):
    import shutil

    copy = env.tmp / f"deep-{time.time_ns()}"
    shutil.copytree(env.stage1, copy)
    (copy / "encoded" / "metadata.json").write_text("[" * 200_000 + "]" * 200_000)
    rc, out, _ = env.cli(*STAGE2, f"run_path={copy}", tiny=False)
    return cli_error(rc, out), last_line(out)


def run_path_loop(env):
    a, b = env.tmp / f"loop-a-{time.time_ns()}", env.tmp / f"loop-b-{time.time_ns()}"
    a.symlink_to(b)
    b.symlink_to(a)
    rc, out, run_dir = env.cli(*STAGE2, f"run_path={a}", tiny=False)
    result = cli_error(rc, out)
    return result + (" (left a run dir)" if run_dir.exists() else ""), last_line(out)


def own_data_case(*extra, z_dim=4):
    def case(env):
        path = mixing_csv(env.tmp / f"own-{time.time_ns()}.csv")
        rc, out, _ = env.cli(
            "datamodule=from_file", f"datamodule.path={path}", f"model.z_dim={z_dim}", "model.z_dim_invariant=2",
            "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "print_metrics=false", *extra, tiny=False,
        )  # fmt: skip
        return cli_error(rc, out), last_line(out)

    return case


def report_odd_run(kind):
    def case(env):
        d, run = report_run_dir(env, f"report-odd-{kind}", "seed: 1\ndatamodule: {dataset: {z_dim: 8, num_domains: 4}}\n")
        value = {"nan": "NaN", "huge": "1e308", "empty-run-json": "0.5"}[kind]
        (run / "metrics.json").write_text('{"r2_zinv_from_hinv": ' + value + ', "r2_zsp_from_hinv": 0.0}')
        if kind == "empty-run-json":
            (run / "run.json").write_text("")
        rc, out = env.report(d, "--out", d / "report", "--no-plots")
        text = (d / "report" / "report.md").read_text() if rc == 0 else ""
        if kind == "huge":
            long_number = any(len(tok) > 40 and tok.replace(".", "").replace("-", "").isdigit() for tok in text.split())
            return ("accepted" if long_number else "ok"), "a 1e308 mean prints " + ("300 digits" if long_number else "as 1e+308")
        problems = text.split("## Problems")[-1].strip().splitlines() if "## Problems" in text else []
        return ("ok" if problems else "accepted"), (problems[0][:150] if problems else "no problem listed")

    return case


def encoded_file_modes(env):
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in (env.stage1 / "encoded").glob("*.safetensors")}
    return ("ok" if all(m == "0o644" for m in modes.values()) else "unreadable files"), str(modes)


CASES = {
    "ckpt_path=http://... (remote checkpoint)": remote_checkpoint,
    "datamodule.dataset.z_dim=abc": bad_override("datamodule.dataset.z_dim=abc"),
    "seed=abc": bad_override("seed=abc"),
    "datamodule.dataset.domain_dist_ranges=abc": bad_override("datamodule.dataset.domain_dist_ranges=abc"),
    "datamodule.dataset.invariant_dist_params=[0,inf]": bad_override("datamodule.dataset.invariant_dist_params=[0,inf]"),
    "datamodule.dataset.num_samples.train=10**10": bad_override("datamodule.dataset.num_samples.train=10**10"),
    "datamodule.dataset.num_samples.train=10000000000": bad_override("datamodule.dataset.num_samples.train=10000000000"),
    "datamodule.dataset.num_samples.train=150000000": bad_override("datamodule.dataset.num_samples.train=150000000"),
    "model.penalty_weight=inf": bad_override("model.penalty_weight=inf"),
    "model.optimizer.lr=nan": bad_override("model.optimizer.lr=nan"),
    "model.restarts=abc": bad_override("model.restarts=abc"),
    "datamodule.batch_size=abc": bad_override("datamodule.batch_size=abc"),
    "datamodule.dataset.z_dim=8.5": silently_truncated("datamodule.dataset.z_dim=8.5", "datamodule.dataset.z_dim"),
    "datamodule.dataset.num_domains=2.7": silently_truncated(
        "datamodule.dataset.num_domains=2.7", "datamodule.dataset.num_domains"
    ),
    "model.z_dim=8.5": silently_truncated("model.z_dim=8.5", "model.z_dim"),
    "trainer.max_epochs=2.5": silently_truncated("trainer.max_epochs=2.5", "trainer.max_epochs"),
    "own data without latent_columns (valid)": own_data_without_latents,
    "string domain labels, one domain of 1 row": string_domains_single_row,
    "NaN domain label": nan_domains,
    "header-only CSV": header_only_csv,
    "CSV edited after a finished run, same command": edited_csv_after_finish,
    "stage 2: metadata without splits": stage2_case(lambda m, c: m.pop("splits")),
    'stage 2: num_domains: "four"': stage2_case(lambda m, c: m.update(num_domains="four")),
    "stage 2: NaN z_hat (checksum updated)": stage2_case(nan_zhat),
    "stage 2: hydra.run.dir inside run_path": run_dir_inside_stage1,
    "failed validation leaves no run directory": validation_failure_leaves_nothing,
    "result files readable (0644)": file_modes,
    "kill + re-run (resume)": kill_and_resume,
    "truncated last.ckpt, re-run": truncated_last_ckpt,
    "mdcrl-report: metrics.json is a list": report_case("list"),
    "mdcrl-report: string metric": report_case("string"),
    "mdcrl-report: --out is a file": report_case("out-file"),
    "estimator: transform before fit": est_case("E(z_dim=4, **{S: 2}).transform(X)"),
    "estimator: z_dim=4.5": est_case("E(z_dim=4.5, **{S: 2}, max_epochs=1).fit(X, D)"),
    "estimator: string labels, one domain of 1 row": est_case(
        "L=np.array(['a','b','c','d'])[D].astype(object); L[0]='solo'; E(z_dim=4, **{S: 2}, max_epochs=1).fit(X, L)"
    ),
    "estimator: None domain label": est_case(
        "L=np.array(['a','b','c','d'])[D].astype(object); L[3]=None; E(z_dim=4, **{S: 2}, max_epochs=1).fit(X, L)"
    ),
    "estimator: fit twice, same run_dir, new data": est_case(
        "e=E(z_dim=4, **{S: 2}, max_epochs=1); e.fit(X, D, run_dir='r'); e.fit(X+1, D, run_dir='r'); e.transform(X)"
    ),
    "estimator dir: NaN weights": tamper_case(
        "from safetensors.numpy import load_file, save_file; w=load_file(str(p/'weights.safetensors'))\n"
        "k=[k for k in w if k.endswith('weight')][0]; w[k][...]=np.nan; save_file(w, str(p/'weights.safetensors'))"
    ),
    "estimator dir: zero x_std": tamper_case(
        "s=json.loads((p/'estimator.json').read_text()); s['x_std']=[0.0]*6; (p/'estimator.json').write_text(json.dumps(s))"
    ),
    # second round
    "two launchers of one run at once": two_launchers,
    "ckpt_path = another run's last.ckpt": foreign_checkpoint,
    "ckpt_path with NaN weights": nan_checkpoint,
    "stage 2: train.safetensors -> /dev/zero": encoding_linked_to_device,
    "stage 2: metadata.json nested 200000 deep": deep_metadata,
    "stage 2: metadata z_hat_dim disagrees with the arrays": stage2_case(lambda m, c: m.update(z_hat_dim=99)),
    "run_path symlink loop": run_path_loop,
    "datamodule.dataset.num_samples=400": bad_override("datamodule.dataset.num_samples=400"),
    "num_threads=-1": bad_override("num_threads=-1"),
    "trainer.accelerator=tpu": bad_override("trainer.accelerator=tpu"),
    "datamodule.dataset.z_dim=100000": bad_override("datamodule.dataset.z_dim=100000"),
    "model.restarts=1000000": bad_override("model.restarts=1000000"),
    "datamodule.batch_size=2 (no two domains in a batch)": bad_override("datamodule.batch_size=2"),
    "every penalty weight 0": warned("model.penalty_criterion.minmax=0", "every penalty weight"),
    "corr_prob with correlated_z=false": warned("datamodule.dataset.corr_prob=0.5", "corr_prob"),
    "+foo=1 (read by no code)": warned("+foo=1", "no code reads"),
    "own data: z_dim above the features": own_data_case(z_dim=12),
    "own data: domain column in latent_columns": own_data_case("datamodule.latent_columns=[domain]"),
    "mdcrl-report: NaN metric": report_odd_run("nan"),
    "mdcrl-report: 1e308 metric": report_odd_run("huge"),
    "mdcrl-report: 0-byte run.json": report_odd_run("empty-run-json"),
    "encoded files readable (0644)": encoded_file_modes,
    "estimator dir: huge hidden_dims": tamper_case(
        "s=json.loads((p/'estimator.json').read_text()); "
        "a=s['settings']['model']['autoencoder'] if 'settings' in s else s['autoencoder']; "
        "a['name']='mlp'; a['hidden_dims']=[200000, 200000]; (p/'estimator.json').write_text(json.dumps(s))"
    ),
    "trainer.max_epoch=3 (a misspelt key)": bad_override("trainer.max_epoch=3"),
    "model=mixing_synthetc (a misspelt option)": bad_override("model=mixing_synthetc"),
    "+trainer.max_epoch=3 (Hydra's suggestion for the misspelt key)": bad_override("+trainer.max_epoch=3"),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", help="run against this src/ directory (PYTHONPATH)")
    parser.add_argument("--only", nargs="*", help="case names containing these strings")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mdcrl-cases-") as tmp:
        env = Env(args.src, Path(tmp))
        cases = {k: v for k, v in CASES.items() if not args.only or any(s in k for s in args.only)}
        if any(k.startswith("stage 2") for k in cases):
            env.stage1 = stage1(env)
        print("| case | outcome | what the user sees (last line) |\n|---|---|---|")
        totals = {}
        for name, case in cases.items():
            try:
                outcome, detail = case(env)
            except Exception as err:  # the harness itself failed on this case
                outcome, detail = "harness error", f"{type(err).__name__}: {err}"[:150]
            totals[outcome.split(" (")[0]] = totals.get(outcome.split(" (")[0], 0) + 1
            print(f"| {name} | {outcome} | {detail.replace('|', '/')} |", flush=True)
        print("\ntotals: " + ", ".join(f"{k} {v}" for k, v in sorted(totals.items())) + f" (of {len(cases)})")


if __name__ == "__main__":
    main()
