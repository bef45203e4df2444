"""The floor of 1x1 convolutions on PyTorch's native CPU path, fitted on a real conv suite."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from perfmodel.predict.device import PER_OP_EXCLUDED, datasets_dir
from perfmodel.predict.native import NativeConv, fit_native, native_shape


def conv(batch=8, c=384, h=2, k=1, stride=1, dtype="float32", direction="fwd"):
    return dict(op="conv2d", phase=direction, dtype=dtype, batch=batch, c_in=c, c_out=c, h=h,
                w=h, kernel_h=k, kernel_w=k, stride=stride, padding=k // 2, dilation=1,
                groups=1)


@pytest.fixture(scope="module")
def conv_rows():
    """The per-op rows of the shipped single-threaded CPU profile (skip without one)."""
    root = datasets_dir()
    for meta in sorted(root.glob("*/metadata.json")) if root.is_dir() else []:
        m = json.loads(meta.read_text())
        rows = meta.parent / "measurements.parquet"
        if m.get("catalogue_key") == "cpu" and m.get("torch_threads") == 1 and rows.is_file():
            df = pd.read_parquet(rows)
            df = df[df["status"] == "ok"]
            return df[~df["suite"].isin(PER_OP_EXCLUDED)]
    pytest.skip("no single-threaded CPU profile under datasets/")


def test_shape_mask_follows_the_dispatch_rule():
    df = pd.DataFrame([conv(), conv(k=3), conv(stride=2), conv(batch=16), conv(dtype="bfloat16"),
                       dict(op="gemm", phase="fwd", dtype="float32", m=4, n=4, k=4)])
    mask, n, flops = native_shape(df)
    assert mask.tolist() == [True, False, False, False, False, False]
    assert n[0] == 4 and flops[0] == 2 * 8 * 384 * 384 * 4


def test_shape_mask_reads_per_dimension_pairs_and_leaves_transposed_convs_out():
    """The counter writes a tuple where height and width differ: a (1, 2) stride is strided
    (oneDNN), a (1, 1) one is not, a (0, 1) padding widens the map; a transposed 1x1
    convolution never takes the native forward path."""
    rows = [conv(stride=(1, 2)), conv(stride=(1, 1)), conv(stride="(1, 2)"),
            dict(conv(), padding=(0, 1)), dict(conv(), dilation=[2, 1]),
            dict(conv(), transposed=True), dict(conv(), transposed=False)]
    mask, n, _ = native_shape(pd.DataFrame(rows))
    assert mask.tolist() == [False, True, False, True, False, False, True]
    assert n[3] == 2 * 4  # (2 + 0) x (2 + 2)


def test_fitted_lines_show_the_small_map_cliff(conv_rows):
    nc = fit_native(conv_rows)
    assert ("fwd", 4) in nc.lines and ("fwd", 196) in nc.lines
    rate = {n: 1 / nc.lines[("fwd", n)][1] for n in (4, 196)}
    assert rate[4] < rate[196] / 4  # a 2x2 map runs far below a 14x14 one
    # the fitted line reproduces the suite's widest 2x2 measurement within 25 %
    mask, n, flops = native_shape(conv_rows)
    sel = mask & (n == 4) & (conv_rows["phase"] == "fwd").to_numpy()
    i = np.flatnonzero(sel)[np.argmax(flops[sel])]
    a, s = nc.lines[("fwd", 4)]
    assert abs((a + s * flops[i]) / conv_rows["time_s"].iloc[i] - 1) < 0.25


def test_floor_applies_to_native_rows_only(conv_rows):
    nc = fit_native(conv_rows)
    df = pd.DataFrame([conv(), conv(direction="bwd"), conv(k=3), conv(h=3), conv(h=1000)])
    f = nc.floor(df)
    assert f[0] > 0 and f[1] > 0
    assert np.isnan(f[2])  # 3x3: oneDNN
    assert f[0] < f[3] <= f[0] * 9 / 4  # 3x3 map: the 2x2 line (the nearest size below)
    assert np.isnan(f[4])  # a map above every fitted size: not extrapolated
    assert np.isnan(NativeConv().floor(df)).all()


def test_single_threaded_profiles_price_small_maps_by_the_line(conv_rows):
    """`priced`: on a single-threaded profile a well-supported line is the prediction on
    maps of at most `REPLACE_MAX_N` pixels, whatever the learned time; a line fitted on
    other FLOPs is a floor there; larger maps keep the learned time; a multi-threaded
    profile's lines are floors."""
    from perfmodel.predict.native import REPLACE_MAX_N

    df = pd.DataFrame([conv(h=2), conv(c=128, h=14), conv(h=28), conv(k=3),
                       conv(c=1024, h=14)])  # the last: 8x the FLOPs the 14x14 line saw
    line = fit_native(conv_rows).floor(df)
    assert np.isfinite(line[[0, 1, 4]]).all() and 14 * 14 <= REPLACE_MAX_N < 28 * 28
    single = fit_native(conv_rows, single_thread=True)
    assert single.well_supported(df).tolist() == [True, True, False, False, False]
    high = line * 10  # a learned prediction far above the line
    use, got = single.priced(df, high)
    assert use.tolist() == [True, True, False, False, False]  # 28 x 28: the learned time
    np.testing.assert_allclose(got[:2], line[:2])
    use, _ = single.priced(df, line / 10)  # below the line: raised to it on small maps
    assert use.tolist() == [True, True, False, False, True]
    use, _ = fit_native(conv_rows).priced(df, high)  # a floor: never lowers
    assert not use.any()
    use, _ = fit_native(conv_rows).priced(df, line / 10)
    assert use[[0, 1, 4]].all()


def test_the_line_beats_the_learned_model_on_held_out_small_maps(conv_rows):
    """The evidence for `REPLACE_MAX_N` in small: native 1x1 rows on maps of <= 16 x 16 of
    one held-out fold of whole shapes (AMD profile, 2026-12-01: line 2-12%, learned 8-65%
    median |error| over the five folds), predicted from the other rows' lines and by a
    learned model fitted on them."""
    import warnings

    from perfmodel.learn.predictor import fit, group_folds

    rows = conv_rows[conv_rows["suite"] == "conv"].copy()
    rows["group"] = rows["op"].astype(str) + "|" + rows["params"].astype(str)
    rows = rows.drop(columns=["flops", "bytes"]).reset_index(drop=True)
    test = group_folds(pd.factorize(rows["group"])[0], 5, seed=0)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fit(rows[~test], "cpu")
    held = rows[test]
    mask, n, _ = native_shape(held)
    fwd = mask & (n <= 256) & (held["phase"].astype(str) == "fwd").to_numpy()
    y = held["time_s"].to_numpy()[fwd]
    line = fit_native(rows[~test]).floor(held)[fwd]
    learned = model.predict(held)["pred_time_s"].to_numpy()[fwd]
    ok = np.isfinite(line)
    assert ok.sum() >= 20
    err_line = np.median(np.abs(line[ok] / y[ok] - 1))
    err_learned = np.median(np.abs(learned[ok] / y[ok] - 1))
    assert err_line < 0.1 and err_line < 0.5 * err_learned


def test_the_profile_digest_follows_the_thread_count_the_native_rule_reads(tmp_path):
    """Whether the native lines replace the learned times depends on the metadata's
    `torch_threads`: a cached fit must not outlive a change of it."""
    from perfmodel.predict.device import profile_digest

    (tmp_path / "measurements.parquet").write_bytes(b"rows")
    digests = []
    for threads in (1, 2, 1):
        (tmp_path / "metadata.json").write_text(json.dumps(
            {"catalogue_key": "cpu", "torch_threads": threads, "created": str(threads)}))
        digests.append(profile_digest(tmp_path))
    assert digests[0] != digests[1] and digests[0] == digests[2]


def test_the_profile_digest_follows_the_device_spec_the_fit_prices_with(tmp_path):
    """A CPU profile is fitted with the local CPU's spec: a cache shared between machines
    (a cluster's home directory) must not hand one machine's fit to another."""
    import dataclasses

    from perfmodel.hardware.catalogue import get_device
    from perfmodel.predict.device import profile_digest

    (tmp_path / "measurements.parquet").write_bytes(b"rows")
    (tmp_path / "metadata.json").write_text(json.dumps({"catalogue_key": "cpu"}))
    spec = get_device("cpu")
    other = dataclasses.replace(spec, sm_count=spec.sm_count * 2,
                                peak_flops={k: 2 * v for k, v in spec.peak_flops.items()})
    assert profile_digest(tmp_path, spec) == profile_digest(tmp_path, get_device("cpu"))
    assert profile_digest(tmp_path, spec) != profile_digest(tmp_path, other)
    assert profile_digest(tmp_path, spec) != profile_digest(tmp_path)
    # a clock read from "cpu MHz" moves between calls: the peaks enter per hertz
    moving = dict(spec.extra, frequency_source="/proc/cpuinfo cpu MHz")
    a = dataclasses.replace(spec, extra=moving, boost_clock_hz=2.0e9,
                            peak_flops={k: v / spec.boost_clock_hz * 2.0e9
                                        for k, v in spec.peak_flops.items()})
    b = dataclasses.replace(a, boost_clock_hz=3.1e9, peak_flops={
        k: v / spec.boost_clock_hz * 3.1e9 for k, v in spec.peak_flops.items()})
    assert profile_digest(tmp_path, a) == profile_digest(tmp_path, b)
