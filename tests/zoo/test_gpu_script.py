"""The one-shot GPU script for WRN-40-2 (examples/wrn40_2_gpu.py), dry-run on CPU with a tiny
configuration: the first invocation is stopped at its deadline, the second resumes, trains
both models, evaluates the seed's table and writes bundle-ready cards that load."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.data import cifar10
from zoo.models.hub import create_model

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "wrn40_2_gpu.py"


def _run(out: Path, minutes: float) -> dict:
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--dry-run",
                           "--minutes", str(minutes)], capture_output=True, text=True,
                          cwd=SCRIPT.parents[1], timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((out / "status.json").read_text())


@pytest.mark.skipif(not (cifar10.SHARED_DATA_DIR / cifar10.NPZ_NAME).is_file(),
                    reason="shared CIFAR-10 JPEG archive (../shared/data) not present")
def test_two_invocations_train_evaluate_and_write_cards(tmp_path):
    first = _run(tmp_path, minutes=0.05)  # 0.75 s for the CNN: stopped at its deadline
    assert first["models"]["cnn_wrn_40_2"]["rc"] == 130 and "eval" not in first
    second = _run(tmp_path, minutes=30)
    assert second.get("done") and second["eval"]["rc"] == 0
    for name in ("cnn_wrn_40_2", "cnnf_wrn_40_2"):
        card = json.loads((tmp_path / "bundle" / f"{name}.json").read_text())
        cells = [r for r in card["robustness_table"]["records"] if r.get("event") == "cell"]
        assert cells and "eval" in card["robustness_table"]["command"]
        net = create_model(name, pretrained=str(tmp_path / "bundle" / f"{name}.safetensors"))
        assert net.cycles == (0 if name.startswith("cnn_") else 2)
    faithful = json.loads((tmp_path / "bundle" / "cnnf_wrn_40_2.json").read_text())["arch"]
    assert faithful["head"] == "nearest" and faithful["norm"] == faithful["mode"] == "original"
