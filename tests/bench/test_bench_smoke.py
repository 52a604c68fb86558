"""``python -m bench --smoke``: every benchmark's code path runs at toy sizes and prints its table.

Not a timing test: the figures of a smoke run mean nothing. It keeps the
scripts from rotting as the trainer, the pipeline and transformers change,
and checks that what they report holds together (both trainers trained the
tokens they were given, both models were scored, streaming memory did not
grow with the corpus).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _missing() -> list[str]:
    """What the bench needs beyond the test dependencies."""
    from encoder_recipes.data.samples import SampleCorpusMissing, sample_files

    missing = [name for name in ("accelerate", "fugashi", "jieba", "rjieba", "pyarrow")
               if importlib.util.find_spec(name) is None]
    for lang in ("en", "ja", "zh"):
        try:
            sample_files(lang)
        except SampleCorpusMissing:
            missing.append(f"the {lang} sample corpus")
    return missing


@pytest.mark.slow
def test_bench_smoke_runs_every_section(tmp_path: Path) -> None:
    missing = _missing()
    if missing:
        pytest.skip(f"the bench needs {', '.join(missing)}")
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--work", str(tmp_path / "work"), "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 training" in result.stdout and "5 GPU" in result.stdout  # the one table was printed

    report = json.loads(out.read_text())
    assert report["mode"] == "smoke" and report["machine"]["cores"] >= 1
    figures = report["figures"]
    benches = {f["bench"] for f in figures}
    assert benches >= {"0 machine", "1 training", "2 data pipeline", "3 memory", "4 sequence length", "5 GPU",
                       "7 prepared store"}
    assert not [f for f in figures if f["what"] == "failed"]

    # 1: both sides trained about the same number of real tokens, and both final models were scored
    speed = [f for f in figures if f["bench"] == "1 training" and f["what"].endswith("non-padding tok/s")]
    assert len(speed) == 2 and all(f["value"] > 0 for f in speed)
    baseline, ours = (f["detail"] for f in speed)
    assert baseline["sparse_prediction"] is False and ours["sparse_prediction"] is True
    assert ours["tokens"] == ours["positions"]  # packed: no padding
    assert 0.5 < baseline["tokens"] / ours["tokens"] < 2
    for side in (baseline, ours):
        assert 0 < side["eval_loss"]["documents"] < 20 and 0 < side["eval_loss"]["packed"] < 20
        assert side["peak_rss_mib"]["self"] > 50
    assert ours["peak_rss_mib"]["children"] > 50  # the data worker process

    # 2: the pipeline made batches in one and in two processes, and the three hiding runs trained
    pipeline = [f for f in figures if f["bench"] == "2 data pipeline"]
    assert any("2 processes" in f["what"] and len(f["detail"]["parts"]) == 2 for f in pipeline)
    assert sum("training step" in f["what"] for f in pipeline) == 3

    # 3: the streaming pipeline read the whole larger corpus without growing
    stream = [f for f in figures if f["bench"] == "3 memory" and "streaming" in f["what"] and "corpus" in f["what"]]
    small, large = (f["detail"] for f in stream)
    assert large["tokens"] > 1.5 * small["tokens"]
    assert large["peak_rss_mib"]["self"] < 1.3 * small["peak_rss_mib"]["self"]

    # 7: the store was prepared and read, and 1 and 2 gloo processes assembled the same global batch
    store = [f for f in figures if f["bench"] == "7 prepared store"]
    assert any(f["what"].startswith("prepare zh (rjieba)") and f["value"] > 0 for f in store)
    assert any(f["what"].startswith("read best_fit") and f["value"] > 0 for f in store)
    ranks = [f["detail"] for f in store if "gloo process" in f["what"]]
    assert [r["world"] for r in ranks] == [1, 2] and len({r["digest"] for r in ranks}) == 1
    assert all(r["rows"] == ranks[0]["rows"] > 0 for r in ranks)
