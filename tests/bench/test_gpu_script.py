"""``python -m bench.gpu --dry-run``: the GPU script's parts run on the CPU and its figures reach the file."""

from __future__ import annotations

import json

import pytest

from bench import gpu


@pytest.mark.slow  # builds and trains tiny models: about 15 s on a quiet machine
def test_dry_run_writes_every_part_to_the_file(tmp_path):
    out = tmp_path / "gpu.json"
    assert gpu.main(["--dry-run", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["machine"]["dry_run"] is True and report["machine"]["sizes"]["lengths"] == [64, 128]
    figures = {f["what"]: f for f in report["figures"]}
    training = [f for w, f in figures.items() if "training, sdpa" in w and "documents kept apart" in w]
    assert [f["detail"]["seq_len"] for f in training] == [64, 128]
    assert all(f["value"] > 0 and f["detail"]["documents_kept_apart"] for f in training)
    inference = next(f for w, f in figures.items() if "inference" in w)
    assert inference["value"] > 0
    memory = next(f for w, f in figures.items() if "DDP and FSDP2" in w)["detail"]
    # at world 1 FSDP2 keeps every parameter whole, as DDP does: the same parameters on the one rank
    assert memory["world"] == 1 and memory["ddp"]["parameters_local"] == memory["fsdp"]["parameters_local"] > 0
    assert memory["static_sharded_gb"]["16"] * 16 == memory["static_gb"]


def test_a_part_past_the_budget_is_skipped_and_says_so(tmp_path):
    out = tmp_path / "gpu.json"
    assert gpu.main(["--dry-run", "--out", str(out), "--budget-s", "0"]) == 0
    figures = json.loads(out.read_text())["figures"]
    assert len(figures) > 1 and all(f["compare"].startswith("skipped") for f in figures[1:])


def test_without_cuda_or_dry_run_it_refuses(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the script would run")
    assert gpu.main(["--out", str(tmp_path / "gpu.json")]) == 2
    assert "--dry-run" in capsys.readouterr().err
