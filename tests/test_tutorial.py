"""docs/tutorial_own_data.md runs as written: its python blocks in order in one namespace, its bash
blocks through bash, from a directory laid out like the repository root."""

import os
import re
import subprocess
import sys

from conftest import ROOT

TUTORIAL = ROOT / "docs" / "tutorial_own_data.md"


def code_blocks(text: str) -> list[tuple[str, str]]:
    return re.findall(r"```(python|bash)\n(.*?)```", text, flags=re.S)


def test_the_tutorial_runs_as_written(tmp_path, monkeypatch):
    for name in ("configs", "run_training.py"):  # what its commands expect at the repository root
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.chdir(tmp_path)
    blocks = code_blocks(TUTORIAL.read_text())
    assert [kind for kind, _ in blocks] == ["python", "bash", "python", "python"]
    namespace: dict = {}
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    for kind, code in blocks:
        if kind == "python":
            exec(compile(code, str(TUTORIAL), "exec"), namespace)
        else:
            result = subprocess.run(["bash", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, result.stderr[-3000:]
            assert "diagnostics.verdict" in result.stdout and "invariant" in result.stdout
    # what the tutorial's comments promise
    assert namespace["est"].metrics_["r2_zinv_from_hinv"] > 0.99
    assert namespace["est"].metrics_["r2_zsp_from_hinv"] < 0.01
    assert namespace["diag"]["verdict"] == "invariant"
    assert (tmp_path / "my_model" / "estimator.json").exists()
