"""docs/writing-a-plugin.md cannot rot: its ```bash blocks run, in order, in a fresh folder.

The blocks are joined into one bash script (so ``cd`` carries over, as it
does for a reader typing them) run with ``set -euo pipefail``: any command
that fails fails the test, with the script's output. The tutorial installs
the plugin it writes into this environment and uninstalls it at its end;
the test uninstalls it again in any case.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "writing-a-plugin.md"
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)


def bash_blocks(text: str) -> list[str]:
    return BLOCK.findall(text)


def test_the_tutorial_has_commands_in_order():
    blocks = bash_blocks(TUTORIAL.read_text(encoding="utf-8"))
    script = "\n".join(blocks)
    steps = ["encoder-recipes new-plugin en", "pip install -e .", "encoder-recipes plugins", "pytest",
             "encoder-recipes run en-starter --scale smoke", "pip uninstall -y encoder-recipes-en"]
    positions = [script.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), dict(zip(steps, positions))


@pytest.mark.slow
def test_tutorial_commands_run(tmp_path):
    script = "set -euo pipefail\nset -x\n" + "\n".join(bash_blocks(TUTORIAL.read_text(encoding="utf-8")))
    env = {
        **os.environ,
        # the commands a reader types, from this environment: encoder-recipes, pip, pytest
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # pip offline: encoder-recipes is installed, setuptools is taken from this environment
        "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    try:
        done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, f"the tutorial failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
        run_dir = tmp_path / "encoder-recipes-en" / "runs" / "en-starter-smoke"
        resolved = (run_dir / "resolved.yaml").read_text(encoding="utf-8")
        assert "language: en" in resolved
        losses = [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
                  if '"loss"' in line]
        assert losses and all(loss > 0 for loss in losses)
        assert "5 passed" in done.stdout  # the generated suite
        assert "1 passed, 4 deselected" in done.stdout  # its probe test, after the probes are rewritten
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "encoder-recipes-en"], env=env,
                       capture_output=True)
    with pytest.raises(md.PackageNotFoundError):
        md.distribution("encoder-recipes-en")


def test_the_component_example_is_a_working_plugin(write_plugin, registries_with):
    """The masking example under "What encoder-recipes promises your plugin" registers and masks."""
    import torch

    from encoder_recipes.clock import Clock

    (source,) = [b for b in re.findall(r"^```python\n(.*?)^```", TUTORIAL.read_text(encoding="utf-8"), re.S | re.M)
                 if "class NoDigits" in b]
    registries = registries_with(write_plugin("tplug_nodigits", source), strict=True)
    masking = registries.component("masking", "no_digits")(rate=0.5, digit_ids=[7])
    ids = torch.tensor([[0, 7, 8, 7, 9, 7, 10, 1] * 8])
    inputs, labels = masking.mask(ids, rate=masking.rate(Clock(0, 1, "s", 0, 0, 1)),
                                  special_tokens_mask=(ids == 0) | (ids == 1), mask_token_id=2, vocab_size=20,
                                  generator=torch.Generator().manual_seed(0), special_ids=torch.tensor([0, 1, 2]))
    assert (labels[ids == 7] == -100).all() and (labels != -100).any()
