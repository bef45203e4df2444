"""`perfmodel fit / predict / evaluate` end to end on temporary CSVs."""
from __future__ import annotations

import pandas as pd

from perfmodel.cli import main
from test_learn_predictor import synthetic_gemms


def test_fit_then_predict_csv(tmp_path, capsys, monkeypatch):
    import perfmodel.learn.predictor as predictor

    monkeypatch.setitem(predictor.XGB_PARAMS, "n_estimators", 20)
    train = tmp_path / "train.csv"
    synthetic_gemms(200).to_csv(train, index=False)
    model = tmp_path / "model"
    assert main(["fit", str(train), "--device", "h100", "--out", str(model)]) == 0
    assert "learned op kinds gemm" in capsys.readouterr().out
    ops = pd.DataFrame({"op": ["gemm", "linear", "softmax"], "m": [512, 64, None], "n": [4096, 1024, None],
                        "k": [4096, 768, None], "b": [1, 1, None], "dtype": ["float16", "bf16", "float16"],
                        "numel": [None, None, 65536], "features": [None, None, 512]})
    inp, out = tmp_path / "ops.csv", tmp_path / "pred.csv"
    ops.to_csv(inp, index=False)
    assert main(["predict", "--model", str(model), "--input", str(inp), "--output", str(out)]) == 0
    res = pd.read_csv(out)
    assert len(res) == 3
    assert list(res.columns[:len(ops.columns)]) == list(ops.columns)  # the input's columns are kept
    assert res["source"].tolist() == ["learned", "learned", "roofline"]
    assert (res["pred_time_s"] > 0).all()
    assert res["pred_time_hi_s"].iloc[:2].gt(res["pred_time_s"].iloc[:2]).all()


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("op,m,n,k,b,dtype,time_s\ngemm,1,2,3,1,float16,zero\n")
    assert main(["fit", str(bad), "--device", "h100", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "time_s" in err and "row 1" in err
    assert main(["predict", "--model", str(tmp_path / "none"), "--input", str(bad), "--output", str(tmp_path / "p.csv")]) == 2
    assert "not a saved predictor" in capsys.readouterr().err


def test_evaluate_prints_every_method(tmp_path, capsys, monkeypatch):
    import perfmodel.learn.predictor as predictor

    monkeypatch.setitem(predictor.XGB_PARAMS, "n_estimators", 20)
    data = tmp_path / "d.csv"
    synthetic_gemms(240).to_csv(data, index=False)
    assert main(["evaluate", str(data), "--device", "h100", "--group-by", "group", "--folds", "3"]) == 0
    out = capsys.readouterr().out
    for method in ("xgboost", "roofline", "linear", "random_forest"):
        assert method in out
    assert "MAPE%" in out and "cover%" in out


def test_fit_base_option_is_saved_and_a_bad_one_is_one_line(tmp_path, capsys, monkeypatch):
    import json

    import perfmodel.learn.predictor as predictor

    monkeypatch.setitem(predictor.XGB_PARAMS, "n_estimators", 20)
    train = tmp_path / "train.csv"
    synthetic_gemms(200).to_csv(train, index=False)
    model = tmp_path / "model"
    assert main(["fit", str(train), "--device", "h100", "--base", "tiled", "--out", str(model)]) == 0
    assert json.loads((model / "predictor.json").read_text())["base"] == "tiled"
    capsys.readouterr()
    try:
        code = main(["fit", str(train), "--device", "h100", "--base", "flat", "--out", str(model)])
    except SystemExit as exc:  # argparse's choices check exits with status 2
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--base" in err
