"""Ranking: Pareto front, JSON keys, plot, CLI errors as one line."""
from __future__ import annotations

import json

import numpy as np
import pytest

from perfmodel.cli import main
from perfmodel.errors import PerfmodelError
from perfmodel.predict.rank import pareto_front, rank_candidates

JSON_REQUIRED = {"strategy", "params", "flops", "acts", "pred_time_s", "pred_energy_j",
                 "pred_peak_bytes", "rank", "rank_lo", "rank_hi", "pareto", "pred_time_s_lo",
                 "pred_time_s_hi"}


pytestmark = pytest.mark.usefixtures("no_shipped_profiles")


def test_pareto_front_by_hand():
    t = [1.0, 2.0, 3.0, 1.5, 2.5, 1.0]
    e = [5.0, 3.0, 1.0, 6.0, 3.0, 5.0]
    # (1,5) twice: neither beats the other; (2,3) beats (2.5,3); (1.5,6) is beaten by (1,5)
    assert pareto_front(t, e).tolist() == [True, True, True, False, False, True]
    assert pareto_front([1.0, np.nan], [1.0, 0.0]).tolist() == [True, False]


def test_rank_json_keys_and_order(capsys):
    rc = main(["rank", "RegNetX-200MF", "--factor", "2", "--strategies", "d,w,r",
               "--batch", "2", "--device", "h100", "--set", "resolution=32", "--json"])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["strategy"] for r in rows] != [] and len(rows) == 3
    for r in rows:
        assert JSON_REQUIRED <= set(r)
    assert [r["rank"] for r in rows] == [1, 2, 3]
    # the roofline has no measured candidates to size ties on: every rank stands alone
    assert [(r["rank_lo"], r["rank_hi"]) for r in rows] == [(1, 1), (2, 2), (3, 3)]
    times = [r["pred_time_s"] for r in rows]
    assert times == sorted(times)
    assert rows[0]["pareto"]  # the fastest candidate is always on the front
    assert all(r["backend"].startswith("catalogue h100-sxm") for r in rows)


def test_rank_transformer_table_and_plot(tmp_path, capsys):
    png = tmp_path / "rank.png"
    over = ["--set", "n_layers=2", "--set", "d_model=64", "--set", "n_heads=2",
            "--set", "d_ff=256", "--set", "seq_len=32", "--set", "vocab_size=128"]
    rc = main(["rank", "gpt2", "--factor", "4", "--strategies", "d,w,s,dws", "--batch", "2",
               "--device", "h100", "--plot", str(png), *over])
    out = capsys.readouterr().out
    assert rc == 0 and "predicted with: catalogue h100-sxm" in out
    assert "ties: no measured candidates to size ties on" in out
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    r = rank_candidates("gpt2", 4, ["d", "w", "s"], batch=2, device="h100",
                        overrides=dict(n_layers=2, d_model=64, n_heads=2, d_ff=256, seq_len=32,
                                       vocab_size=128), include_base=True)
    df = r.to_frame()
    assert set(df["strategy"]) == {"base", "d", "w", "s"}
    base = df[df["strategy"] == "base"].iloc[0]
    assert (df.loc[df["strategy"] != "base", "flops"] > 2.5 * base["flops"]).all()
    assert r.pareto_axis == "pred_energy_j"
    several = rank_candidates("gpt2", [2, 4], ["d", "w"], batch=2, device="h100",
                              overrides=dict(n_layers=2, d_model=64, n_heads=2, d_ff=256,
                                             seq_len=32, vocab_size=128)).to_frame()
    assert sorted(zip(several["strategy"], several["factor"])) == [
        ("d", 2.0), ("d", 4.0), ("w", 2.0), ("w", 4.0)]
    assert sorted(several["rank"]) == [1, 2, 3, 4]


@pytest.mark.parametrize("argv, message", [
    (["rank", "RegNetX-200MF", "--factor", "2", "--strategies", "dq", "--device", "h100"],
     "bad scaling strategy"),
    (["rank", "no-such-model", "--factor", "2", "--device", "h100"], "unknown model"),
    (["rank", "RegNetX-200MF", "--factor", "-1", "--device", "h100"], "factor"),
    (["rank", "RegNetX-200MF", "--factor", "2,x", "--device", "h100"], "--factor expects"),
    (["rank", "RegNetX-200MF", "--factor", "2", "--device", "./nowhere/prof"], "no such profile"),
    (["rank", "RegNetX-200MF", "--factor", "2", "--device", "h100", "--set", "oops"], "KEY=VALUE"),
    (["validate", "--profile", "/nonexistent/profile"], "not a profile directory"),
])
def test_cli_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_vit_ranks_with_its_own_default_strategies(capsys):
    """A ViT has no group widths: its defaults scale d, w and r only (the CNN list's
    d1_w8_g8_r1 was refused), and a bad strategy's example uses the ViT's letters."""
    from perfmodel.predict.rank import VIT_DEFAULT, default_strategies

    assert default_strategies("ViT-B/16") == VIT_DEFAULT and "g" not in "".join(VIT_DEFAULT)
    assert main(["rank", "ViT-B/16", "--factor", "2", "--device", "h100", "--json",
                 "--set", "resolution=64"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["strategy"] for r in rows) == sorted(VIT_DEFAULT)
    assert main(["rank", "ViT-B/16", "--factor", "2", "--strategies", "zz"]) == 2
    assert "'d1_w8_r1'" in capsys.readouterr().err


def test_rank_says_which_candidates_fit_in_the_gpus_memory(capsys):
    """On a GPU each candidate's predicted peak is checked against the device's memory (a
    CPU has no such column: its RAM is the machine's)."""
    from perfmodel.hardware.catalogue import get_device

    cap = get_device("h100").memory_bytes
    big = rank_candidates("Llama-3-8B", 2.0, ["w", "d"], batch=1, device="h100",
                          dtype="bfloat16").to_frame()
    assert (big["pred_peak_bytes"] > cap).all() and not big["fits_in_memory"].any()
    small = rank_candidates("gpt2", 2.0, ["w", "d"], batch=2, device="h100",
                            dtype="bfloat16").to_frame()
    assert (small["pred_peak_bytes"] < cap).all() and small["fits_in_memory"].all()
    assert main(["rank", "Llama-3-8B", "--factor", "2", "--strategies", "w,d", "--device",
                 "h100", "--dtype", "bfloat16"]) == 0
    out = capsys.readouterr().out
    assert "fits: NO marks" in out and "  fits  pareto" in out
    cpu = rank_candidates("gpt2", 2.0, ["w"], batch=1, device="cpu",
                          overrides={"n_layers": 2, "d_model": 64, "n_heads": 2,
                                     "seq_len": 32, "vocab_size": 256}).to_frame()
    assert cpu["fits_in_memory"].isna().all()
    assert main(["rank", "gpt2", "--factor", "2", "--strategies", "w", "--device", "h100",
                 "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert all(isinstance(r["fits_in_memory"], bool) for r in rec)


def test_a_candidate_past_the_scaling_bound_is_skipped_not_fatal(capsys):
    """x128 by depth alone is past the 100x per-dimension bound: that candidate is skipped
    and named, the others are ranked."""
    r = rank_candidates("RegNetX-200MF", 128, ["d", "dw", "dwr"], device="h100",
                        overrides={"resolution": 32})
    assert [c[0] for c in r.candidates] == ["dw", "dwr"] and len(r.skipped) == 1
    assert r.skipped[0].startswith("d x128: scaling factor 128 with strategy 'd' multiplies "
                                   "the depth by 128")
    assert main(["rank", "RegNetX-200MF", "--factor", "128", "--strategies", "d,dw",
                 "--device", "h100", "--set", "resolution=32"]) == 0
    assert "perfmodel rank: skipped d x128" in capsys.readouterr().err
    with pytest.raises(PerfmodelError, match="no candidate in range"):
        rank_candidates("RegNetX-200MF", 1e6, ["d", "w"], device="h100")


def test_the_pareto_front_is_per_factor_and_leaves_the_base_out():
    """The unscaled base (a fraction of the compute) would dominate every candidate, and a
    x2 candidate is not an alternative to a x4 one: each factor has its own front."""
    r = rank_candidates("RegNetX-200MF", [2, 4], ["d", "w", "r"], device="cpu",
                        overrides={"resolution": 32}, include_base=True)
    df = r.to_frame()
    assert not df.loc[df["strategy"] == "base", "pareto"].any()
    for f in (2.0, 4.0):
        g = df[(df["factor"] == f) & (df["strategy"] != "base")]
        assert g["pareto"].any()
        fastest = g.loc[g["pred_time_s"].idxmin()]
        assert fastest["pareto"]


def test_candidates_past_the_published_context_are_noted(capsys):
    """gpt2 `s` x4 runs 4096 tokens, past its 1024-token context: its position table grows
    with it, and the ranking says so (the published context is the limit, not an
    override's shorter `seq_len`)."""
    small = {"n_layers": 2, "d_model": 128, "n_heads": 2, "d_ff": 512, "vocab_size": 256}
    r = rank_candidates("gpt2", 4, ["s", "w", "ds"], device="h100", batch=1, overrides=small)
    assert r.notes == [
        "s x4: sequence 4096 is beyond gpt2's 1024-token context: its learned position "
        "table grows with it (parameters beyond the published model's)",
        "ds x4: sequence 2048 is beyond gpt2's 1024-token context: its learned position "
        "table grows with it (parameters beyond the published model's)"]
    short = rank_candidates("gpt2", 4, ["s"], device="h100", batch=1,
                            overrides=dict(small, seq_len=128))
    assert short.notes == []  # 512 tokens: within the published 1024
    assert rank_candidates("RegNetX-200MF", 4, ["r"], device="h100",
                           overrides={"resolution": 32}).notes == []
    assert main(["rank", "gpt2", "--factor", "4", "--strategies", "s", "--device", "h100",
                 "--batch", "1", "--set", "n_layers=2", "--set", "d_model=128", "--set",
                 "n_heads=2", "--set", "d_ff=512", "--json"]) == 0
    assert "perfmodel rank: note: s x4: sequence 4096 is beyond" in capsys.readouterr().err
