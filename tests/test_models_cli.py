"""`perfmodel complexity` and `perfmodel scale` (thin shells over models.report)."""
from __future__ import annotations

import json

import pytest

from perfmodel.cli import main
from perfmodel.models.registry import complexity
from perfmodel.models.scaling import scale


def _json(capsys, argv):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    return json.loads(out)


def test_complexity_json_exact(capsys):
    d = _json(capsys, ["complexity", "regnetx-200mf", "--json"])
    assert (d["params"], d["macs"], d["flops"], d["acts"]) == (
        2_684_792, 199_040_872, 398_081_744, 2_164_056)
    assert all(isinstance(d[k], int) for k in ("params", "macs", "flops", "acts"))
    assert d["batch"] == 1 and d["input_size"] == [3, 224, 224]


def test_complexity_batch_and_resolution(capsys):
    d = _json(capsys, ["complexity", "EN-B0", "--batch", "4", "--resolution", "256", "--json"])
    cx = complexity("EN-B0", resolution=256)
    assert d["params"] == cx.params
    assert d["macs"] == 4 * cx.macs and d["acts"] == 4 * cx.acts
    assert d["input_size"] == [3, 256, 256]


def test_complexity_text(capsys):
    assert main(["complexity", "R-50-1x64d"]) == 0
    out = capsys.readouterr().out
    assert "25,557,032" in out and "4,089,185,256" in out


def test_scale_json(capsys):
    d = _json(capsys, ["scale", "RegNetY-400MF", "--factor", "4", "--strategy",
                       "d1_w8_g8_r1", "--json"])
    p = scale("RegNetY-400MF", 4, "d1_w8_g8_r1")
    cx = complexity(p)
    assert d["architecture"]["depths"] == list(p.depths)
    assert d["architecture"]["widths"] == list(p.widths)
    assert d["architecture"]["resolution"] == p.resolution == 240
    assert (d["params"], d["macs"], d["acts"]) == (cx.params, cx.macs, cx.acts)
    assert d["factor"] == 4.0 and d["strategy"] == "d1_w8_g8_r1"


@pytest.mark.parametrize("argv", [
    ["complexity", "RegNetX-20MF"],
    ["complexity", "RegNetX-200MF", "--batch", "0"],
    ["scale", "RegNetX-200MF", "--factor", "2", "--strategy", "q"],
    ["scale", "RegNetX-200MF", "--factor", "-1", "--strategy", "d"],
])
def test_errors_are_one_line(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"perfmodel {argv[0]}: error:") and err.count("\n") == 1


def test_transformer_counted(capsys):
    pytest.importorskip("perfmodel.counting.counter")
    d = _json(capsys, ["complexity", "gpt2", "--resolution", "128", "--json"])
    assert d["params"] == 124_439_808  # the model is unchanged, it just runs on 128 tokens
    assert d["input_size"] == [128]
    # Forward MACs at least 2 x params-per-token matmuls x tokens (embeddings excluded).
    assert d["macs"] >= 128 * (124_439_808 - 1024 * 768 - 50257 * 768)
    assert d["bytes"] > 0
