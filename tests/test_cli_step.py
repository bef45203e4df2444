"""`perfmodel step MODEL`: one model's predicted step, its split and its parts."""
from __future__ import annotations

import json

import pytest

from perfmodel.cli import main
from perfmodel.predict import predict_model

pytestmark = pytest.mark.usefixtures("no_shipped_profiles")


def test_step_json_matches_the_python_api(capsys):
    assert main(["step", "gpt2", "--batch", "2", "--device", "h100", "--set", "seq_len=128",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    p = predict_model("gpt2", 2, device="h100", overrides={"seq_len": 128})
    assert d["pred_time_s"] == pytest.approx(p.time.value)
    assert d["pred_time_s"] == pytest.approx(d["pred_forward_s"] + d["pred_backward_s"]
                                             + d["pred_optimizer_s"])
    assert sum(r["time_s"] for r in d["parts"]) == pytest.approx(d["pred_time_s"])
    assert [r["module"] for r in d["parts"]][:2] == ["embed", "blocks.0"]
    assert d["compiled"] is False and d["mode"] == "train"


def test_step_table_sums_parts_of_one_kind(capsys, tmp_path):
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps({"n_embd": 64, "n_layer": 3, "n_head": 4, "vocab_size": 100,
                               "n_positions": 32}))
    assert main(["step", str(cfg), "--batch", "2", "--device", "h100", "--infer",
                 "--compile"]) == 0
    out = capsys.readouterr().out
    assert "inference" in out and "torch.compile" in out
    assert "blocks.0..2" in out and "transformer_block      3" in out
    rows = [line.split()[0] for line in out.split("\n\n", 1)[1].splitlines() if line.strip()]
    assert rows == ["module", "embed", "blocks.0..2", "head"]  # inference: no loss, no optimizer


def test_step_json_is_strict(capsys):
    """A single-part model's rows have no saved-bytes figure: null, not NaN."""
    assert main(["step", "ViT-B/16", "--device", "h100", "--set", "resolution=64",
                 "--json"]) == 0
    out = capsys.readouterr().out
    d = json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert any(r["act_bytes"] is None for r in d["parts"])


@pytest.mark.parametrize("argv,message", [
    (["step", "gpt2", "--factor", "0", "--strategy", "d"], "positive"),
    (["step", "gpt2", "--factor", "4"], "--factor and --strategy go together"),
    (["step", "gpt2", "--batch", "0"], "--batch must be >= 1"),
    (["step", "no-such-model"], "unknown model"),
    (["step", "gpt2", "--dtype", "float16"], "cpu has no float16 math mode"),
    (["step", "gpt2", "--dtype", "tf32"], "cpu has no tf32 math mode"),
    (["rank", "gpt2", "--factor", "2", "--dtype", "tf32"], "cpu has no tf32 math mode"),
])
def test_step_bad_input_is_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_step_says_when_the_step_does_not_fit(capsys):
    assert main(["step", "gpt2", "--batch", "64", "--device", "t4", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["fits_in_memory"] is False and d["pred_peak_bytes"] > 16e9
    assert main(["step", "gpt2", "--batch", "1", "--device", "t4", "--set", "seq_len=128"]) == 0
    assert "fits         yes" in capsys.readouterr().out


def test_a_dtype_the_profile_never_measured_is_refused():
    """A profile's per-op suites that never ran a dtype cannot price it: a one-line error
    naming what it has, not a number extrapolated from other dtypes."""
    from perfmodel.errors import PerfmodelError
    from perfmodel.predict.device import resolve_backend

    backend = resolve_backend("h100")
    backend.measured_dtypes = frozenset({"float32", "bfloat16"})
    try:
        with pytest.raises(PerfmodelError, match="measured no float16 ops .it has bfloat16, float32"):
            predict_model("gpt2", 1, dtype="float16", device=backend,
                          overrides={"seq_len": 64})
        predict_model("gpt2", 1, dtype="bfloat16", device=backend, overrides={"seq_len": 64})
    finally:
        backend.measured_dtypes = None


def test_the_energy_says_what_it_rests_on(capsys):
    """Without a profile a GPU's energy is its TDP times the roofline time: the output says
    so (JSON `energy_basis`, text), so it is not read as a measured figure."""
    assert main(["step", "gpt2", "--device", "h100", "--set", "seq_len=128", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["energy_basis"] == "TDP"
    assert d["pred_energy_j"] == pytest.approx(700.0 * d["pred_time_s"], rel=1e-6)
    assert main(["step", "gpt2", "--device", "h100", "--set", "seq_len=128"]) == 0
    assert "at the device's TDP: no power measured" in capsys.readouterr().out
