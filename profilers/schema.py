"""The profile format (version 7): columns with units, reading, writing and CSV export.

A profile is a directory holding `measurements.parquet` (one row per point) and
`metadata.json`. `datasets/README.md` documents the same columns; a test keeps them equal.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from perfmodel.errors import PerfmodelError

SCHEMA_VERSION = 7
# version 1 lacks the repeat-pass columns, version 2 `repeats` and `time_center_s`, version 3
# the vector-op columns `numel` ... `training`, version 4 `inplace`, version 5
# `energy_tail_s` and `energy_tail_j`, version 6 `kv_heads` (all read as empty)
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6, 7)
MEASUREMENTS = "measurements.parquet"
METADATA = "metadata.json"
JOURNAL = "journal.jsonl"


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # pandas dtype
    unit: str
    doc: str


_C = Column
COLUMNS: tuple[Column, ...] = (
    _C("point_id", "string", "", "deterministic id of the point: suite/op/phase/dtype/params"),
    _C("suite", "string", "", "suite that measured it: gemm, conv, vector, attention, blocks, validation"),
    _C("op", "string", "", "op kind (gemm, bmm, conv2d, ...), block name or model name"),
    _C("phase", "string", "", "fwd (forward, no autograd), fwd_bwd (forward+backward), "
       "train_step (fwd+bwd+optimizer step) or inference"),
    _C("dtype", "string", "", "math mode: float32, tf32, float16, bfloat16, float8_e4m3fn"),
    _C("m", "Int64", "", "GEMM rows of A and C"),
    _C("n", "Int64", "", "GEMM columns of B and C"),
    _C("k", "Int64", "", "GEMM reduction dimension"),
    _C("b", "Int64", "", "GEMM batch count (1 for a plain GEMM)"),
    _C("batch", "Int64", "", "batch size (conv, blocks, attention, validation; a vector "
       "suite batch norm's samples)"),
    _C("c_in", "Int64", "", "input channels"),
    _C("h", "Int64", "px", "input height"),
    _C("w", "Int64", "px", "input width"),
    _C("c_out", "Int64", "", "output channels"),
    _C("kernel_h", "Int64", "px", "kernel height"),
    _C("kernel_w", "Int64", "px", "kernel width"),
    _C("stride", "Int64", "px", "stride"),
    _C("padding", "Int64", "px", "zero padding on each side"),
    _C("dilation", "Int64", "px", "dilation"),
    _C("groups", "Int64", "", "convolution groups (c_in = depthwise)"),
    _C("heads", "Int64", "", "attention heads"),
    _C("kv_heads", "Int64", "", "key/value heads (grouped-query attention: fewer than heads)"),
    _C("seq_q", "Int64", "tokens", "query sequence length"),
    _C("seq_k", "Int64", "tokens", "key/value sequence length"),
    _C("head_dim", "Int64", "", "attention head dimension"),
    _C("causal", "boolean", "", "causal attention mask"),
    _C("d_model", "Int64", "", "transformer width"),
    _C("d_ff", "Int64", "", "transformer MLP hidden width"),
    _C("numel", "Int64", "", "vector op: elements of its output (a reduction: of its input)"),
    _C("channels", "Int64", "", "batch norm: channels of its NCHW map"),
    _C("features", "Int64", "", "vector op: normalised extent of a layer-norm or softmax row"),
    _C("out_numel", "Int64", "", "reduction: elements of its result"),
    _C("read_numel", "Int64", "", "elementwise op with a broadcast input: elements read"),
    _C("inputs", "Int64", "", "elementwise op: input tensors"),
    _C("training", "boolean", "", "batch norm: batch statistics (true) or running ones"),
    _C("inplace", "boolean", "", "vector op: writes into its first input (relu_, add_)"),
    _C("factor", "float64", "", "validation: scaling factor of the model"),
    _C("strategy", "string", "", "validation: scaling strategy"),
    _C("params", "string", "", "JSON object with every parameter of the point"),
    _C("n_params", "Int64", "", "learnable parameters of the block or model"),
    _C("flops", "float64", "FLOP", "floating-point operations of one execution (2 x MACs), "
       "from perfmodel's op formulas; empty where none applies"),
    _C("bytes", "float64", "B", "minimum bytes read + written by one execution"),
    _C("time_s", "float64", "s", "median time of one execution"),
    _C("time_iqr_s", "float64", "s", "interquartile range of the timed samples"),
    _C("time_repeat_s", "float64", "s", "median of the point's repeat measurements (the "
       "repeat pass, later in its suite; empty for points not repeated; in a merged "
       "profile, empty when only a later run measured the point again: `repeats` then "
       "counts that run's measurements)"),
    _C("repeats", "Int64", "", "repeat measurements of the point (0 when not repeated)"),
    _C("time_center_s", "float64", "s", "median of all of the point's measurements (time_s "
       "and every repeat): its best time estimate across the run"),
    _C("time_noise_s", "float64", "s", "half-width of the band around time_s in which a "
       "re-measurement falls 90% of the time: the suite's repeat-pass band x time_s, at "
       "least time_iqr_s"),
    _C("reps", "Int64", "", "timed samples (each the mean of inner_reps executions)"),
    _C("inner_reps", "Int64", "", "back-to-back executions per timed sample"),
    _C("energy_j", "float64", "J", "energy of one execution (window energy / executions); "
       "empty without an energy source"),
    _C("power_w", "float64", "W", "average power over the energy window"),
    _C("energy_sampled_j", "float64", "J", "cross-check: one execution's energy from "
       "integrated sampled power"),
    _C("energy_source", "string", "", "nvml_counter, nvml_sampled, rapl or empty"),
    _C("energy_window_s", "float64", "s", "length of the energy window"),
    _C("energy_execs", "Int64", "", "executions inside the energy window"),
    _C("energy_tail_s", "float64", "s", "GPU: from the work's end to the counter change that closed the window"),
    _C("energy_tail_j", "float64", "J", "GPU: energy counted in that tail and taken off the window's (not per execution)"),
    _C("act_bytes", "Int64", "B", "bytes saved for backward by the forward pass (shared "
       "storages once, parameters excluded)"),
    _C("peak_bytes", "Int64", "B", "peak bytes allocated on the GPU during one execution, "
       "including resident inputs, weights and optimizer state; empty on CPU"),
    _C("sm_clock_hz", "float64", "Hz", "mean SM (CPU: core) clock during the window"),
    _C("mem_clock_hz", "float64", "Hz", "mean memory clock during the window"),
    _C("temp_c", "float64", "degC", "maximum GPU temperature during the window"),
    _C("throttle_reasons", "Int64", "", "NVML clocks-event reasons OR'd over the window"),
    _C("speed_ratio", "float64", "", "CPU: the canary's time around the timing over its "
       "fastest in the run (1 = nominal speed; see profilers.canary); empty on a GPU"),
    _C("throttled", "boolean", "", "GPU: power or thermal throttling seen during the window; "
       "CPU: speed_ratio stayed above 1.2 (a slow spell of the machine)"),
    _C("status", "string", "", "ok or failed"),
    _C("error", "string", "", "why a failed point failed (exception type: message)"),
    _C("wall_s", "float64", "s", "wall time spent on the point (build, warm-up, timing, energy)"),
    _C("seq", "Int64", "", "position of the point in its suite's measurement order"),
)
COLUMN_NAMES = [c.name for c in COLUMNS]
PLAIN_CSV_REQUIRED = ("op", "m", "n", "k", "b", "dtype", "time_s")


def to_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows (dicts) as a DataFrame with every schema column in order and typed."""
    frame = pd.DataFrame(rows)
    for col in COLUMNS:
        if col.name not in frame:
            frame[col.name] = None
        values = frame[col.name].astype(object)
        values = values.where(values.notna(), None)
        if col.dtype in ("float64", "Int64"):
            values = pd.to_numeric(values, errors="coerce")
        frame[col.name] = values.astype(col.dtype)
    return frame[COLUMN_NAMES]


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that a crash leaves either the old or the new content, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_measurements(frame: pd.DataFrame, directory: Path) -> None:
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    write_atomic(Path(directory) / MEASUREMENTS, buf.getvalue())


def write_metadata(meta: dict, directory: Path) -> None:
    write_atomic(Path(directory) / METADATA, (json.dumps(meta, indent=2, default=str) + "\n").encode())


def read_metadata(directory) -> dict:
    path = Path(directory) / METADATA
    if not path.is_file():
        raise PerfmodelError(f"{directory}: not a profile (no {METADATA})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PerfmodelError(f"{path}: unreadable metadata ({exc})") from None


def read_profile(directory, include_journal: bool = True) -> pd.DataFrame:
    """The measurements of a profile directory (with any not yet compacted journal rows)."""
    from profilers.journal import Journal

    directory = Path(directory)
    meta = read_metadata(directory)
    version = meta.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise PerfmodelError(f"{directory}: profile schema version {version}, this "
                             f"profilers reads versions {', '.join(map(str, READABLE_VERSIONS))}")
    rows = []
    path = directory / MEASUREMENTS
    if path.is_file():
        rows = pd.read_parquet(path).to_dict("records")
    if include_journal:
        rows += [r for r in Journal(directory / JOURNAL).read() if r.get("kind", "point") == "point"]
    return dedupe(to_frame(rows))


def dedupe(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per point id (the last written wins), ordered by suite and measurement order."""
    frame = frame.drop_duplicates("point_id", keep="last")
    return frame.sort_values(["suite", "seq"], kind="stable").reset_index(drop=True)


def export_csv(directory, out: Path | str | None = None) -> Path:
    """Write the profile's rows as CSV (default DIR/measurements.csv); returns the path."""
    frame = read_profile(directory)
    out = Path(out) if out else Path(directory) / "measurements.csv"
    if out.suffix.lower() != ".csv":
        raise PerfmodelError(f"{out}: export writes CSV; give a .csv path")
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    return out


def columns_markdown() -> str:
    """The column table of datasets/README.md (kept equal by a test)."""
    lines = ["| column | type | unit | meaning |", "| --- | --- | --- | --- |"]
    for c in COLUMNS:
        lines.append(f"| `{c.name}` | {c.dtype} | {c.unit or '-'} | {c.doc} |")
    return "\n".join(lines)
