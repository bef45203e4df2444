"""`perfmodel mfu` says what would make a configuration fit: cheapest change first, and the
suggested configuration does fit under the same memory model."""
from __future__ import annotations

import json

from perfmodel.cli import main
from perfmodel.llm.mfu import estimate_mfu

GIB = 2 ** 30


def _report(**kw):
    """Measured mode (a step time given): the memory check alone, no step prediction."""
    return estimate_mfu(kw.pop("model"), kw.pop("batch"), kw.pop("seq"), step_time=100.0,
                        device="h100", **kw)


def test_no_suggestion_when_it_fits():
    r = _report(model="gpt2", batch=8, seq=1024)
    assert r.fits_in_memory and r.fit_suggestion is None


def test_smaller_micro_batch_first_and_the_largest_that_fits():
    # Llama-3-8B over 8 GPUs with ZeRO-1 and selective recomputation: states fit, only
    # the activations of 16 sequences per micro-batch do not
    kw = dict(model="Llama-3-8B", batch=128, seq=8192, gpus=8, zero=1, recompute="selective")
    r = _report(**kw)
    assert r.micro_batch == 16 and not r.fits_in_memory
    s = r.fit_suggestion
    assert s.changes == (f"--micro-batch {s.micro_batch}",)
    assert s.recompute == "selective" and s.zero == 1 and not s.sequence_parallel
    assert _report(micro_batch=s.micro_batch, **kw).fits_in_memory
    larger = [m for m in (2, 4, 8) if m > s.micro_batch]  # the next divisor of 16 is too big
    assert larger and not _report(micro_batch=larger[0], **kw).fits_in_memory


def test_savers_added_cheapest_first_and_the_result_fits():
    kw = dict(model="Llama-3-70B", batch=1024, seq=8192, gpus=64, tp=8, pp=2)
    r = _report(**kw)
    assert not r.fits_in_memory and r.memory.total > 1000 * GIB
    s = r.fit_suggestion
    # micro-batch 1 alone (87 GiB) does not fit, sequence parallelism alone neither:
    # ZeRO-1 comes next; selective recomputation is not needed
    assert s.changes[1:] == ("--sequence-parallel", "--zero 1")
    assert s.recompute == "none"
    again = _report(micro_batch=s.micro_batch, sequence_parallel=True, zero=1, **kw)
    assert again.fits_in_memory and again.memory.total == s.memory.total
    assert not _report(micro_batch=1, sequence_parallel=True, **kw).fits_in_memory
    assert not _report(micro_batch=s.micro_batch * 2, sequence_parallel=True, zero=1,
                       **kw).fits_in_memory


def test_nothing_fits_says_so(capsys):
    # 405 B parameters on 8 GPUs: even ZeRO-3 with full recomputation needs > 80 GiB
    r = _report(model="Llama-3.1-405B", batch=8, seq=8192, gpus=8)
    assert not r.fits_in_memory and r.fit_suggestion is None
    assert main(["mfu", "--model", "Llama-3.1-405B", "--batch", "8", "--gpus", "8",
                 "--step-time", "100"]) == 0
    err = capsys.readouterr().err
    assert "does not fit" in err and "more GPUs or larger tp/pp" in err
    assert len(err.strip().splitlines()) == 1


def test_cli_prints_and_json_carries_the_suggestion(capsys):
    args = ["mfu", "--model", "Llama-3-70B", "--batch", "1024", "--seq", "8192", "--gpus",
            "64", "--tp", "8", "--pp", "2", "--step-time", "100"]
    assert main(args) == 0
    cap = capsys.readouterr()
    assert "would fit with        --micro-batch" in cap.out
    assert "it would fit with --micro-batch" in cap.err
    assert main(args + ["--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    fs = d["fit_suggestion"]
    assert fs["zero"] == 1 and fs["sequence_parallel"] is True
    assert fs["total_bytes"] <= d["device_memory_bytes"] < d["memory"]["total_bytes"]
    assert main(["mfu", "--model", "gpt2", "--batch", "8", "--step-time", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fit_suggestion"] is None


def test_only_savers_that_save_and_nothing_more_than_needed():
    # ZeRO-2 alone fits Llama-2-13B over 8 GPUs: neither selective recomputation (about
    # nothing with flash attention) nor ZeRO-3 is suggested on top of it
    s = _report(model="Llama-2-13B", batch=8, seq=4096, gpus=8).fit_suggestion
    assert s.changes == ("--zero 2",) and s.recompute == "none"
    # ZeRO shards over data-parallel replicas only: with dp 1 (all GPUs context parallel)
    # it would save nothing and is not offered
    s = _report(model="gpt2-xl", batch=1, seq=131072, gpus=4, cp=4).fit_suggestion
    assert s.changes == ("--recompute full",) and s.zero == 0


def test_a_recompute_fraction_can_become_full():
    kw = dict(model="Llama-3-8B", batch=8, seq=32768, gpus=8, zero=3, micro_batch=1)
    r = _report(recompute=" 0.3", **kw)
    assert not r.fits_in_memory
    assert r.fit_suggestion.changes == ("--recompute full",)
    assert _report(recompute="full", **kw).fits_in_memory
