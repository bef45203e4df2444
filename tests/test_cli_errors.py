"""Realistic mistakes on every `perfmodel` subcommand: exit code 2 and one clear error line.

Each case is (argv, word): the command must exit with 2, print no traceback, and end its
stderr with one `perfmodel CMD: error: ...` line containing `word`. Errors raised by the
library (PerfmodelError) and argparse's own errors (a non-numeric option value,
conflicting flags) alike are the only stderr line. `{d}` in an argument is
replaced by a folder of prepared bad files and a small fitted predictor.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from perfmodel.cli import main

CSV_HEAD = "op,m,n,k,b,dtype,time_s\n"
FILES = {
    "empty.csv": "",
    "header.csv": CSV_HEAD,
    "missing.csv": "op,m,n\ngemm,1,2\n",
    "nonnum.csv": CSV_HEAD + "gemm,abc,64,64,1,float16,0.001\n",
    "negtime.csv": CSV_HEAD + "gemm,64,64,64,1,float16,-0.001\n",
    "nantime.csv": CSV_HEAD + "gemm,64,64,64,1,float16,nan\n",
    "zerom.csv": CSV_HEAD + "gemm,0,64,64,1,float16,0.001\n",
    "fracm.csv": CSV_HEAD + "gemm,64.5,64,64,1,float16,0.001\n",
    "baddtype.csv": CSV_HEAD + "gemm,64,64,64,1,float99,0.001\n",
    "badop.csv": CSV_HEAD + "frobnicate,64,64,64,1,float16,0.001\n",
    "negenergy.csv": "op,m,n,k,b,dtype,time_s,energy_j\ngemm,64,64,64,1,float16,0.001,-3\n",
    "good.csv": CSV_HEAD + "gemm,64,64,64,1,float16,0.001\n",
    "ops.csv": "op,m,n,k,b,dtype\ngemm,64,64,64,1,float16\n",
    "ops_neg.csv": "op,m,n,k,b,dtype\ngemm,-5,64,64,1,float16\n",
    "ops_nok.csv": "op,m,n,dtype\ngemm,64,64,float16\n",
    "ops_noop.csv": "m,n,k,b,dtype\n64,64,64,1,float16\n",
    "ops_conv.csv": "op,m,n,k,b,dtype\nconv2d,,,,,float16\n",
    "garbage.parquet": "not parquet\n",
    "cfg.json": "{\"n_layers\": 2,",
    "cfg_missing.json": json.dumps({"d_model": 64, "n_layers": 2, "n_heads": 4}),
    "cfg_negative.json": json.dumps({"d_model": 64, "n_layers": -2, "n_heads": 4, "d_ff": 256,
                                     "vocab_size": 100, "seq_len": 128}),
    "cfg_mlp.json": json.dumps({"d_model": 64, "n_layers": 2, "n_heads": 4, "d_ff": 256,
                                "vocab_size": 100, "seq_len": 128, "mlp": "swiglue"}),
    "folder/readme.txt": "not a profile\n",
    "unfinished/journal.jsonl": "{}\n",
}


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory) -> Path:
    """Bad inputs, and a predictor fitted on 60 synthetic GEMMs with its files corrupted."""
    import perfmodel.learn.predictor as predictor
    from test_learn_predictor import synthetic_gemms

    d = tmp_path_factory.mktemp("bad")
    for name, text in FILES.items():
        (d / name).parent.mkdir(exist_ok=True)
        (d / name).write_text(text)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(predictor.XGB_PARAMS, "n_estimators", 5)
        pred = predictor.fit(synthetic_gemms(60), device="h100")
    model = pred.save(d / "model")
    for name, damage in (("truncated", lambda s: s[: len(s) // 2]), ("emptied", lambda s: "")):
        pred.save(d / name)
        f = d / name / "time_gemm.json"
        f.write_text(damage(f.read_text()))
    (d / "folder.png").mkdir()
    pred.save(d / "nometa")
    (d / "nometa" / "predictor.json").unlink()
    pred.save(d / "badmeta")
    (d / "badmeta" / "predictor.json").write_text("{\"x\":")
    assert model.is_dir()
    return d


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse
        rc = exc.code
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def check_error(argv, word, bad_dir, capsys, argparse_error=False):
    argv = [a.replace("{d}", str(bad_dir)) for a in argv]
    rc, out, err = run_cli(argv, capsys)
    # the one-time notice that a profile is being fitted (an empty cache: whichever test
    # reaches the shipped profile first) is not part of the error
    lines = [line for line in err.strip().splitlines()
             if not line.startswith("perfmodel: first use of ")]
    assert rc == 2, f"exit {rc}; stderr: {err!r}"
    assert "Traceback" not in err
    prog = "perfmodel" if argparse_error else f"perfmodel {argv[0]}"  # argparse: either
    assert lines and lines[-1].startswith(prog) and ": error: " in lines[-1], err
    assert word.lower() in lines[-1].lower(), lines[-1]
    assert len(lines) == 1, err


def cases(*rows):
    return [pytest.param(r[0].split(), r[1], id=r[0]) for r in rows]


MODELS = cases(
    ("complexity NoSuchNet", "known families"),
    ("complexity RegNetX-20", "close matches"),
    ("complexity RegNetX-200MF --resolution 0", "resolution"),
    ("complexity RegNetX-200MF --resolution -5", "resolution"),
    ("complexity RegNetX-200MF --batch 0", "batch"),
    ("complexity RegNetX-200MF --dtype float99", "float99"),
    ("complexity RegNetX-200MF --dtype int8", "int8"),
    ("complexity ViT-B/16 --resolution 17", "patch size"),
    ("complexity RegNetX-200MF --resolution 32", "--batch 2"),
    ("scale NoSuchNet --factor 2 --strategy d", "unknown model"),
    ("scale RegNetX-200MF --factor 0 --strategy d", "positive"),
    ("scale RegNetX-200MF --factor -2 --strategy d", "positive"),
    ("scale RegNetX-200MF --factor nan --strategy d", "positive"),
    ("scale RegNetX-200MF --factor inf --strategy d", "finite"),
    ("scale RegNetX-200MF --factor 2 --strategy q", "strategy 'q'"),
    ("scale RegNetX-200MF --factor 2 --strategy dd", "repeats"),
    ("scale RegNetX-200MF --factor 2 --strategy d0_w0", "weight 0"),
    ("scale RegNetX-200MF --factor 2 --strategy d1_w8_g8_r1_x3", "bad scaling strategy"),
    ("scale gpt2 --factor 2 --strategy r", "'dws'"),
    ("scale RegNetX-200MF --factor 2 --strategy d --batch 0", "batch"),
    ("scale RegNetX-200MF --factor 2 --strategy d --dtype bogus", "bogus"),
)
ARGPARSE = cases(
    ("complexity RegNetX-200MF --resolution abc", "invalid int"),
    ("scale RegNetX-200MF --factor abc --strategy d", "invalid float"),
    ("scale RegNetX-200MF --factor 2", "--strategy"),
    ("devices --bogus", "unrecognized"),
    ("devices --no-cpu --measure-cpu-bandwidth", "not allowed"),
    ("mfu --model Llama-2-7B --batch abc", "invalid int"),
    ("mfu --model Llama-2-7B --batch 8 --tokens-per-s 1000 --step-time 1", "not allowed"),
    ("mfu --model Llama-2-7B --batch 8 --zero 5", "invalid choice"),
    ("fit {d}/ops.csv --device h100", "--out"),
    ("fit {d}/ops.csv --device h100 --out {d}/m --coverage abc", "invalid float"),
    ("rank RegNetX-200MF --factor 2 --train --infer", "not allowed"),
    ("validate --phase bogus", "invalid choice"),
    ("profile --progress loud", "invalid choice"),
)
MFU = cases(
    ("mfu --model NoSuch --batch 8 --step-time 1", "unknown transformer config"),
    ("mfu --model Llama-2-7B --batch 0 --step-time 1", "batch"),
    ("mfu --model Llama-2-7B --batch 8 --seq 0 --step-time 1", "seq"),
    ("mfu --model Llama-2-7B --batch 8 --gpus 0 --step-time 1", "gpus"),
    ("mfu --model Llama-2-7B --batch 8 --precision fp99 --step-time 1", "fp99"),
    ("mfu --model Llama-2-7B --batch 8 --device h10 --step-time 1", "close matches"),
    ("mfu --model Llama-2-7B --batch 8 --device v100 --precision bf16 --step-time 1",
     "no dense bfloat16"),
    ("mfu --model Llama-2-7B --batch 8 --tokens-per-s 0", "positive"),
    ("mfu --model Llama-2-7B --batch 8 --tokens-per-s nan", "positive"),
    ("mfu --model Llama-2-7B --batch 8 --step-time -1", "positive"),
    ("mfu --model Llama-2-7B --batch 8 --tokens-per-s 1e12", "above"),
    ("mfu --model Llama-2-7B --batch 8 --recompute bogus --step-time 1", "recompute"),
    ("mfu --model Llama-2-7B --batch 8 --recompute 1.5 --step-time 1", "1.5"),
    ("mfu --model Llama-2-7B --batch 8 --micro-batch 0 --step-time 1", "micro-batch"),
    ("mfu --model gpt2 --batch 8 --micro-batch 3 --device h100", "does not divide"),
    ("mfu --model gpt2 --batch 8 --micro-batch 16 --device h100", "does not divide"),
    ("mfu --model PaLM-540B --batch 2048 --gpus 6144 --device tpu-v4 --tokens-per-s 38.8",
     "give the model-parallel sizes"),
    ("mfu --model Llama-2-7B --batch 8 --tp 0 --step-time 1", "tp"),
    ("mfu --model Llama-2-7B --batch 8 --cp 0 --step-time 1", "cp"),
    ("mfu --model Llama-2-7B --batch 8 --tp 3 --step-time 1", "multiple"),
    ("mfu --model Llama-2-7B --batch 7 --gpus 2 --step-time 1", "multiple"),
    ("mfu --model Llama-2-7B --batch 8 --optimizer lion --step-time 1", "lion"),
    ("mfu --model {d}/nonexistent.json --batch 8 --step-time 1", "cannot read"),
    ("mfu --model {d}/cfg.json --batch 8 --step-time 1", "not valid json"),
    ("mfu --model {d}/cfg_missing.json --batch 8 --step-time 1", "d_ff"),
    ("mfu --model {d}/cfg_negative.json --batch 8 --step-time 1", "n_layers"),
    ("mfu --model {d}/cfg_mlp.json --batch 8 --step-time 1", "swiglue"),
)
LEARN = cases(
    ("fit {d}/good.csv --device nosuch --out {d}/m", "unknown device"),
    ("fit {d}/nonexistent.csv --device h100 --out {d}/m", "no such file"),
    ("fit {d}/empty.csv --device h100 --out {d}/m", "cannot read"),
    ("fit {d}/header.csv --device h100 --out {d}/m", "no rows"),
    ("fit {d}/missing.csv --device h100 --out {d}/m", "missing column"),
    ("fit {d}/nonnum.csv --device h100 --out {d}/m", "'abc'"),
    ("fit {d}/negtime.csv --device h100 --out {d}/m", "time_s"),
    ("fit {d}/nantime.csv --device h100 --out {d}/m", "time_s"),
    ("fit {d}/zerom.csv --device h100 --out {d}/m", "positive integer"),
    ("fit {d}/fracm.csv --device h100 --out {d}/m", "64.5"),
    ("fit {d}/baddtype.csv --device h100 --out {d}/m", "float99"),
    ("fit {d}/badop.csv --device h100 --out {d}/m", "frobnicate"),
    ("fit {d}/negenergy.csv --device h100 --out {d}/m", "energy_j"),
    ("fit {d}/folder --device h100 --out {d}/m", "not a profile directory"),
    ("fit {d}/unfinished --device h100 --out {d}/m", "profile not finished"),
    ("fit {d}/garbage.parquet --device h100 --out {d}/m", "cannot read"),
    ("fit {d}/cfg.json --device h100 --out {d}/m", "unsupported file type"),
    ("fit {d}/good.csv --out {d}/m", "device"),
    ("fit {d}/nonnum.csv --device h100 --out {d}/m --coverage 1.5", "'abc'"),
    ("fit {d}/negenergy.csv --device h100 --out {d}/empty.csv", "energy_j"),
    ("predict --model {d}/model --input {d}/ops.csv --output {d}/p.csv --device nosuch",
     "unknown device"),
    ("predict --model {d}/truncated --input {d}/ops.csv --output {d}/p.csv", "corrupt"),
    ("predict --model {d}/emptied --input {d}/ops.csv --output {d}/p.csv", "corrupt"),
    ("predict --model {d}/badmeta --input {d}/ops.csv --output {d}/p.csv", "corrupt"),
    ("predict --model {d}/nometa --input {d}/ops.csv --output {d}/p.csv",
     "not a saved predictor"),
    ("predict --model {d}/ops.csv --input {d}/ops.csv --output {d}/p.csv",
     "not a saved predictor"),
    ("predict --model {d}/model --input {d}/nonexistent.csv --output {d}/p.csv", "no such file"),
    ("predict --model {d}/model --input {d}/folder --output {d}/p.csv", "is a directory"),
    ("predict --model {d}/model --input {d}/empty.csv --output {d}/p.csv", "cannot read"),
    ("predict --model {d}/model --input {d}/garbage.parquet --output {d}/p.csv", "cannot read"),
    ("predict --model {d}/model --input {d}/ops_neg.csv --output {d}/p.csv", "positive integer"),
    ("predict --model {d}/model --input {d}/ops_nok.csv --output {d}/p.csv", "'k'"),
    ("predict --model {d}/model --input {d}/ops_noop.csv --output {d}/p.csv", "missing column"),
    ("predict --model {d}/model --input {d}/ops_conv.csv --output {d}/p.csv", "batch"),
    ("predict --model {d}/model --input {d}/ops.csv --output {d}/p.xlsx", "unsupported output"),
    ("predict --model {d}/model --input {d}/ops.csv --output {d}/folder", "unsupported output"),
    ("evaluate {d}/good.csv --device nosuch", "unknown device"),
    ("evaluate {d}/empty.csv --device h100", "cannot read"),
    ("evaluate {d}/folder --device h100", "not a profile directory"),
    ("evaluate {d}/negtime.csv --device h100 --folds 0", "folds"),
    ("evaluate {d}/negtime.csv --device h100 --folds 1", "folds"),
)
READ_ONLY = cases(  # commands of helpers still at work: checked, not fixed here
    ("rank NoSuchNet --factor 2", "unknown model"),
    ("rank RegNetX-200MF --factor 0", "positive"),
    ("rank RegNetX-200MF --factor abc", "numbers"),
    ("rank RegNetX-200MF --factor inf", "finite"),
    ("rank RegNetX-200MF --factor 2 --strategies q,d", "strategy 'q'"),
    ("rank RegNetX-200MF --factor 2 --batch 0", "batch"),
    ("rank RegNetX-200MF --factor 2 --device nosuch", "unknown device"),
    ("rank RegNetX-200MF --factor 2 --device {d}/folder", "neither a profile"),
    ("rank RegNetX-200MF --factor 2 --device {d}/truncated", "corrupt"),
    ("rank RegNetX-200MF --factor 2 --dtype float99", "float99"),
    ("rank RegNetX-200MF --factor 2 --optimizer lion", "lion"),
    ("rank RegNetX-200MF --factor 2 --set bogus=1", "bogus"),
    ("rank RegNetX-200MF --factor 2 --set resolution=abc", "resolution"),
    ("rank RegNetX-200MF --factor 2 --set noequals", "key=value"),
    ("validate --profile {d}/folder", "not a profile"),
    ("validate --profile {d}/nonexistent", "not a profile"),
    ("profile --device nosuch --budget 1s --out {d}/prof", "nosuch"),
    ("profile --suite nosuch --budget 1s --out {d}/prof", "unknown suite"),
    ("profile --budget abc --out {d}/prof", "budget"),
    ("profile --budget 0s --out {d}/prof", "positive"),
    ("profile --threads 0 --budget 1s --out {d}/prof", "threads"),
    ("profile --device cpu --flush-l2 --budget 1s --out {d}/prof", "for --device cuda"),
    ("step gpt2 --infer --optimizer adamw", "not to --infer"),
    ("rank gpt2 --factor 2 --infer --optimizer sgd", "not to --infer"),
    ("profile export {d}/folder --csv", "not a profile"),
    ("profile compare {d}/folder", "two profile"),
    ("profile --budget 1s --out {d}/empty.csv", "not a directory"),
)
PLOT = cases(
    ("rank RegNetX-200MF --factor 2 --plot {d}/plot.txt", "txt"),
    ("rank RegNetX-200MF --factor 2 --plot {d}/plot", "unsupported image format"),
    ("rank RegNetX-200MF --factor 2 --plot {d}/no/such/folder/x.png", "no folder"),
    ("rank RegNetX-200MF --factor 2 --plot {d}/folder.png", "is a folder"),
)


@pytest.mark.parametrize("argv, word", MODELS + MFU + LEARN + READ_ONLY + PLOT)
def test_bad_input_is_one_error_line(argv, word, bad_dir, capsys):
    check_error(argv, word, bad_dir, capsys)


@pytest.mark.parametrize("argv, word", ARGPARSE)
def test_argparse_errors_end_with_the_error_line(argv, word, bad_dir, capsys):
    check_error(argv, word, bad_dir, capsys, argparse_error=True)


def test_outputs_create_their_folder(bad_dir, capsys):
    """`predict --output` and `evaluate --csv` into a folder that does not exist yet."""
    out = bad_dir / "new" / "deeper" / "pred.csv"
    rc, _, err = run_cli(["predict", "--model", str(bad_dir / "model"), "--input",
                          str(bad_dir / "ops.csv"), "--output", str(out)], capsys)
    assert rc == 0, err
    assert len(pd.read_csv(out)) == 1


def test_device_mismatch_warning_is_one_line(bad_dir, capsys):
    rc, _, err = run_cli(["predict", "--model", str(bad_dir / "model"), "--input",
                          str(bad_dir / "ops.csv"), "--output", str(bad_dir / "p.csv"),
                          "--device", "a100"], capsys)
    assert rc == 0
    assert err.strip().count("\n") == 0 and err.startswith("perfmodel predict: warning:")
    assert "a100" in err


def _api_cases():
    import perfmodel
    from perfmodel.ops import gemm_cost, op_cost

    conv = dict(batch=1, c_in=3, h=8, w=8, c_out=4, kernel_h=3, kernel_w=3)
    return [
        (lambda: gemm_cost(0, 2, 3), "m must be a positive integer"),
        (lambda: gemm_cost(2.5, 2, 3), "m must be a positive integer"),
        (lambda: op_cost("conv2d", **conv, stride=0), "stride must be >= 1"),
        (lambda: op_cost("conv2d", **conv, padding=-1), "padding must be >= 0"),
        (lambda: op_cost("conv2d", **conv, dilation=1.5), "dilation must be an integer"),
        (lambda: perfmodel.build_model("RegNetX-200MF", float("inf"), "d"), "finite"),
        (lambda: perfmodel.build_model("RegNetX-200MF", "x", "d"), "must be a number"),
        (lambda: perfmodel.build_model("RegNetX-200MF", 2, "d0_w0"), "weight 0"),
        (lambda: perfmodel.build_model("RegNetX-200MF", resolution="224"), "resolution"),
        (lambda: perfmodel.flops_per_token("gpt2", 0), "sequence length"),
        (lambda: perfmodel.training_memory("gpt2", 0), "micro-batch"),
        (lambda: perfmodel.estimate_mfu("gpt2", 8, gpus=1.5, step_time=1), "gpus"),
        (lambda: perfmodel.estimate_mfu("gpt2", "abc", step_time=1), "batch"),
        (lambda: perfmodel.count_model(perfmodel.build_model("gpt2", device="meta"), batch=0),
         "positive"),
    ]


def test_python_api_raises_the_same_errors():
    """The checks live in the library, not only in the CLI."""
    from perfmodel.errors import PerfmodelError

    for call, word in _api_cases():
        with pytest.raises(PerfmodelError, match=word):
            call()
    import perfmodel  # names resolve where a config is expected
    assert perfmodel.param_count("gpt2").total == 124_439_808


def test_scale_says_when_rounding_misses_the_factor(capsys):
    """Depth cannot drop below one block per stage: 1e-4 x FLOPs is not reachable."""
    rc, out, err = run_cli(["scale", "RegNetX-200MF", "--factor", "0.0001", "--strategy", "d",
                            "--json"], capsys)
    assert rc == 0
    assert err.startswith("perfmodel scale: warning: scaling gives") and "0.0001x" in err
    assert 0.2 < json.loads(out)["achieved_factor"] < 0.6
    rc, out, err = run_cli(["scale", "RegNetX-200MF", "--factor", "4", "--strategy", "dwr",
                            "--json"], capsys)
    assert rc == 0 and err == "" and 3.5 < json.loads(out)["achieved_factor"] < 4.5


def test_profile_export_creates_its_folder_and_refuses_non_csv(tmp_path, capsys):
    prof = Path(__file__).resolve().parents[1] / "datasets" / "cpu-amd-epyc"
    if not (prof / "measurements.parquet").is_file():
        pytest.skip("no shipped CPU profile")
    out = tmp_path / "new" / "rows.csv"
    rc, _, _ = run_cli(["profile", "export", str(prof), "--output", str(out)], capsys)
    assert rc == 0 and out.stat().st_size > 0
    check_error(["profile", "export", str(prof), "--output", str(tmp_path / "x.parquet")],
                "csv", tmp_path, capsys)
