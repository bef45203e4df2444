"""`perfmodel complexity`/`scale`: the past-the-context note and the achieved-factor warning."""
from __future__ import annotations

import importlib.util
import json

import pytest

from perfmodel.cli import main

transformer = pytest.mark.skipif(importlib.util.find_spec("perfmodel.counting") is None,
                                 reason="counting a transformer needs perfmodel.counting")


def _run(capsys, argv):
    assert main(argv) == 0
    cap = capsys.readouterr()
    return cap.out, cap.err


@transformer
@pytest.mark.parametrize("argv, limit", [
    (["complexity", "gpt2", "--resolution", "5000"], 1024),
    (["scale", "gpt2", "--factor", "4", "--strategy", "d1_w8_s1"], 1024),
    (["scale", "Llama-3-8B", "--factor", "4", "--strategy", "d1_w8_s1"], 8192),
])
def test_note_past_the_published_context(capsys, argv, limit):
    _, err = _run(capsys, argv)
    assert err.startswith(f"perfmodel {argv[0]}: note: sequence ")
    assert f"{limit}-token context" in err and err.count("\n") == 1


@transformer
def test_no_note_within_the_context(capsys):
    assert _run(capsys, ["complexity", "gpt2"])[1] == ""
    assert _run(capsys, ["complexity", "gpt2", "--resolution", "1024"])[1] == ""


@pytest.mark.parametrize("argv", [
    ["complexity", "RegNetX-400MF", "--resolution", "512"],
    ["complexity", "ViT-B/16", "--resolution", "1024"],  # 4097 tokens, but no note for ViTs
    ["scale", "RegNetX-400MF", "--factor", "4", "--strategy", "dwr"],  # 0.89x: no warning
])
def test_cnn_and_vit_say_nothing(capsys, argv):
    assert _run(capsys, argv)[1] == ""


@transformer
@pytest.mark.parametrize("argv", [
    ["complexity", "gpt2", "--resolution", "5000", "--json"],
    ["scale", "gpt2", "--factor", "4", "--strategy", "d1_w8_s1", "--json"],
])
def test_json_stays_pure_with_the_note_on_stderr(capsys, argv):
    out, err = _run(capsys, argv)
    d = json.loads(out)
    assert out.count("\n") == 1 and d["input_size"][0] > 1024
    assert err.startswith(f"perfmodel {argv[0]}: note: ") and "1024" in err


@transformer
def test_achieved_factor_has_significant_figures(capsys):
    out, _ = _run(capsys, ["scale", "GPT-3-175B", "--factor", "0.00002", "--strategy", "dw",
                           "--json"])
    d = json.loads(out)
    base, _ = _run(capsys, ["complexity", "GPT-3-175B", "--json"])
    ratio = d["flops"] / json.loads(base)["flops"]  # about 0.0002722
    assert d["achieved_factor"] == pytest.approx(ratio, rel=1e-3)
    assert d["achieved_factor"] == float(f"{ratio:.6g}")


def test_warns_when_rounding_misses_by_more_than_a_quarter(capsys):
    """R-50's depths (3, 4, 6, 3) round dwr x4 to about 2.5x: within the old 0.5x-2x band."""
    out, err = _run(capsys, ["scale", "R-50-1x64d", "--factor", "4", "--strategy", "dwr",
                             "--json"])
    achieved = json.loads(out)["achieved_factor"]
    assert achieved / 4 < 0.8
    assert err.startswith(f"perfmodel scale: warning: scaling gives {achieved:.4g}x the "
                          f"FLOPs, not the 4x asked") and err.count("\n") == 1
