"""In-place vector ops on the shipped AMD profile: priced from its measured in-place rows."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from perfmodel.ops import op_cost


def _ops(op: str, numel: int, **params) -> pd.DataFrame:
    """The op out of place and in place, with the columns the counter gives."""
    c = op_cost(op, phase="fwd", dtype="float32", numel=numel, **params)
    return pd.DataFrame({"op": op, "direction": "fwd", "phase": "fwd", "dtype": "float32",
                         "numel": numel, "flops": c.flops, "bytes": c.bytes,
                         "inplace": [None, True], **params})


def _measured_ratio(prof_rows: pd.DataFrame, op: str, variant: str, numel: int) -> float:
    """Measured time of the in-place point nearest `numel` over the out-of-place time at
    its size (interpolated in log-log between the suite's out-of-place points)."""
    from perfmodel.predict.measured import center_times

    rows = prof_rows[(prof_rows["suite"] == "vector") & (prof_rows["op"] == op)
                     & (prof_rows["dtype"] == "float32") & (prof_rows["phase"] == "fwd")]
    rows = rows.assign(t=center_times(rows),
                       variant=[json.loads(p)["variant"] for p in rows["params"]])
    inplace = rows[rows["inplace"].fillna(False).astype(bool)]
    out = rows[rows["variant"] == variant].sort_values("numel")
    gap = (np.log(inplace["numel"].astype(float)) - np.log(numel)).abs()
    near = inplace.iloc[gap.argsort()[:5]]
    ti = np.exp(np.interp(np.log(near["numel"].astype(float)),
                          np.log(out["numel"].astype(float)), np.log(out["t"])))
    return float(np.median(near["t"] / ti))


@pytest.mark.parametrize("op, variant, inputs, numel", [
    ("relu", "unary", None, 2 ** 14),
    # 16 MB in place against 32 MB out of place: the L3's edge. Predicted 0.28 against
    # 0.25 measured until the profile gained its large maps (runs 7-8, 2026-12-01), 0.44
    # against 0.26 since (its out-of-place relu points near 4M elements moved the trees; a
    # feature for the bytes touched in place brought it to 0.37 but cost the vector ops
    # 0.2% in the 5-fold test, so it is not in): a known miss, kept visible
    pytest.param("relu", "unary", None, 2 ** 22, marks=pytest.mark.xfail(
        strict=True, reason="relu_ at the L3's edge: predicted ratio 0.44, measured 0.26")),
    ("elementwise", "add", 2, 2 ** 14),
    ("elementwise", "add", 2, 2 ** 22),
])
def test_in_place_ops_are_priced_as_measured(amd, op, variant, inputs, numel):
    """float32 relu_ and `x += y` against relu and `x + y` at the same size: the predicted
    ratio is the profile's measured one within 25 % (AMD, 2026-12-01, measured / predicted:
    relu_ 0.60 / 0.68 at 2^14 elements, 0.26 / 0.44 at 2^22 (marked); add_ 0.68 / 0.74,
    0.48 / 0.48)."""
    from perfmodel.predict.device import datasets_dir, read_profile_rows

    rows = read_profile_rows(datasets_dir() / "cpu-amd-epyc")
    want = _measured_ratio(rows, op, variant, numel)
    assert want < 0.85  # the profile measured in-place ops faster
    ops = _ops(op, numel, **({"inputs": inputs} if inputs else {}))
    t = amd.optimes.predict(ops)["time_s"].to_numpy()
    assert t[1] / t[0] == pytest.approx(want, rel=0.25)


def test_silu_in_place_is_priced_as_silu(amd):
    """The suite times no silu_ (repeated, it would shrink towards denormals): the
    predictor prices it as silu out of place."""
    t = amd.optimes.predict(_ops("silu", 2 ** 20))["time_s"].to_numpy()
    assert t[1] == pytest.approx(t[0], rel=1e-9)
