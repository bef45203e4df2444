"""The light half imports without xgboost, scikit-learn, matplotlib or rich (GPU machines lack them)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("xgboost", "sklearn", "matplotlib", "rich")

# Run in a fresh interpreter where the heavy packages cannot be imported at all: each step
# must neither import them nor need them. Steps run in order; sys.modules only grows, so a
# heavy module seen after a step was imported by that step or an earlier one.
SCRIPT = r"""
import contextlib, io, json, sys
HEAVY = %r

for name in HEAVY:  # None in sys.modules: `import name` fails, find_spec says not installed
    sys.modules[name] = None
steps = {
    "import perfmodel": "import perfmodel",
    "import profilers": "import profilers",
    "import perfmodel.models, .ops, .counting, .hardware":
        "import perfmodel.models, perfmodel.ops, perfmodel.counting, perfmodel.hardware",
    "import perfmodel.llm": "import perfmodel.llm",
    "perfmodel complexity": "main(['complexity', 'RegNetX-200MF', '--json'])",
    "perfmodel mfu (measured)": "main(['mfu', '--model', 'gpt2', '--batch', '8', '--step-time', '1'])",
    "perfmodel devices": "main(['devices', '--no-cpu'])",
}
report = {}
for label, code in steps.items():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        from perfmodel.cli import main
        rc = eval(code) if code.startswith("main") else exec(code)
    loaded = [m for m, mod in sys.modules.items() if mod is not None and m.split(".")[0] in HEAVY]
    report[label] = {"rc": rc or 0, "heavy": sorted(loaded)}
print(json.dumps(report))
"""


def test_light_imports_and_commands_need_no_heavy_packages():
    res = subprocess.run([sys.executable, "-c", SCRIPT % (HEAVY,)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(report) == 7
    for label, r in report.items():
        assert r == {"rc": 0, "heavy": []}, f"{label}: {r}"
