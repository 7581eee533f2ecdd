"""Usage errors answer before torch, transformers or lm-eval are imported (so in about a second).

Timing would depend on the machine; what makes a typo slow is importing the heavy libraries, so the
test counts imports instead: each bad command runs in a fresh interpreter that reports which heavy
modules were imported by the time it exited.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "lm_eval", "datasets")

_PROBE = """
import json, sys
from evalkit.cli import main
heavy = {heavy!r}
report = []
for argv in json.loads(sys.argv[1]):
    try:
        main(argv)
    except SystemExit as exc:
        report.append({{"code": exc.code, "heavy": [m for m in heavy if m in sys.modules]}})
print(json.dumps(report))
"""


def test_misspelt_task_policy_and_checkpoint_fail_without_heavy_imports(tmp_path):
    (tmp_path / "models" / "base").mkdir(parents=True)
    (tmp_path / "models" / "tuned").mkdir()
    misspelt = str(tmp_path / "models" / "bsae")
    out = str(tmp_path / "out")
    commands = [
        ["compare", "a", "b", "--tasks", "mmlx", "--out", out],
        ["compare", "a", "b", "--tasks", "voc_sample", "--policy", str(tmp_path / "nope.yaml"), "--out", out],
        ["compare", misspelt, str(tmp_path / "models" / "tuned"), "--tasks", "voc_sample", "--out", out],
        ["eval", misspelt, "--tasks", "voc_sample"],
    ]
    probe = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY), json.dumps(commands)], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    report = json.loads(probe.stdout)
    assert [r["code"] for r in report] == [2, 2, 2, 2], probe.stderr
    assert [r["heavy"] for r in report] == [[]] * 4, probe.stderr
    errors = probe.stderr.splitlines()
    assert "Did you mean 'mmlu'" in errors[0] and "nope.yaml" in errors[1]
    assert errors[2].endswith(f"Did you mean {str(tmp_path / 'models' / 'base')!r}?"), errors[2]
