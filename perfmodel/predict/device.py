"""What to predict with: `--device` as a profile directory, a saved predictor, or a name.

- A profile directory (`metadata.json` + `measurements.parquet`, written by `profilers`):
  a per-op predictor is fitted on its per-op suites (everything except `blocks` and
  `validation`) when it has enough of them, else the roofline; the `blocks` suite
  calibrates the sum of ops (`perfmodel.predict.calibration`); the `validation` suite's
  unscaled and x2 models give the whole-model scale (`perfmodel.predict.assembly`), its
  x4 candidates (a ranking's ground truth) are never fitted on; the same unscaled and x2
  models size the whole-model interval (`perfmodel.predict.interval`).
- A saved predictor directory (`predictor.json`, from `perfmodel fit`): its per-op models.
- A device name (`h100`, `cpu`, ...): the shipped profile under `datasets/` that matches
  the catalogue key (and, for a CPU, the processor name) is used as above; with none,
  the catalogue + roofline. `Backend.description` says which, and every result carries it.

Fitted predictors and calibrations are cached in memory and on disk (`PERFMODEL_CACHE`,
default `~/.cache/perfmodel`), keyed by the SHA-256 of the profile's measurements and of
the fitting code (a changed feature set refits instead of loading a stale fit).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from perfmodel.errors import PerfmodelError
from perfmodel.predict.calibration import (FEATURES, MIN_BLOCK_ROWS, Calibration, Calibrations,
                                          feature_columns, features, fit_calibration,
                                          measured_classes)
from perfmodel.learn.schema import WHOLE_SUITES
from perfmodel.predict.measured import center_time
from perfmodel.predict.assembly import scale_of
from perfmodel.predict.optimes import OpTimes

PER_OP_EXCLUDED = WHOLE_SUITES  # blocks and whole models: not per-op rows
MIN_PER_OP_ROWS = 50
CACHE_VERSION = 8  # bump when the cached files change format or meaning
# math modes a CPU has no whole-model path for (`Backend.check_dtype`)
CPU_NO_MATH_MODE = frozenset({"tf32", "float16", "float8_e4m3fn", "float8_e5m2"})
# metadata fields a fit depends on (part of `profile_digest`)
DIGEST_METADATA = ("catalogue_key", "device_name", "torch_threads")
MAIN_KINDS = ("gemm", "conv", "attention", "elementwise")  # op kinds most models spend in
MAX_REL_IQR = 0.25  # block rows whose IQR exceeds 25% of the median are not calibrated on


def datasets_dir() -> Path:
    """Where shipped profiles live: `$PERFMODEL_DATASETS`, else `datasets/` of the repository
    (a source checkout or editable install), else the copy a `pip install .` put under
    `<prefix>/share/perfmodel/datasets`."""
    env = os.environ.get("PERFMODEL_DATASETS")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2] / "datasets"
    installed = Path(sys.prefix) / "share" / "perfmodel" / "datasets"
    return repo if repo.is_dir() or not installed.is_dir() else installed


def cache_dir() -> Path:
    return Path(os.environ.get("PERFMODEL_CACHE", Path.home() / ".cache" / "perfmodel"))


@dataclass
class Backend:
    """A device with the means to predict on it."""

    device: object  # DeviceSpec
    optimes: OpTimes
    calibration: Calibrations
    kind: str  # "profile" | "predictor" | "roofline"
    description: str
    profile_dir: Path | None = None
    measured: dict = field(default_factory=dict, repr=False)  # measured.block_table
    _parts: dict = field(default_factory=dict, repr=False)
    assembly: object = None  # assembly.AssemblyScale: whole model vs its parts
    resolution: object = None  # resolution.RankResolution: how close is a tie
    interval: object = None  # interval.ModelInterval: how far a whole model can be off
    # a profile: the dtypes its per-op suites measured (None: not known, not checked)
    measured_dtypes: frozenset | None = None

    def check_dtype(self, dtype: str) -> None:
        """Refuse a math mode a CPU has no whole-model path for (tf32, float16, fp8), one a
        profile never measured an op in (its prediction would be an extrapolation from
        other dtypes), or, without a profile, one the catalogue has no peak for."""
        from perfmodel.dtypes import canonical_dtype

        name = canonical_dtype(dtype)
        cpu = self.device.kind == "cpu"
        if cpu and name in CPU_NO_MATH_MODE:
            raise PerfmodelError(f"{self.device.key} has no {name} math mode for whole models "
                                 "(tf32 is a GPU tensor-core mode; CPU float16 matmuls have no "
                                 "fast kernel): use float32 or bfloat16")
        if self.measured_dtypes is None:  # the catalogue's peaks price it: it needs one
            self.device.peak(name)  # "<device> has no dense <mode> math mode (has: ...)"
            return
        have = sorted(d for d in self.measured_dtypes if not (cpu and d in CPU_NO_MATH_MODE))
        if name not in have:
            raise PerfmodelError(
                f"{self.profile_dir or self.device.key}: the profile measured no {name} ops "
                f"(it has {', '.join(have)}): profile {name} on this device first "
                "(`perfmodel profile`), or choose one of those")

    def assembly_scale(self, train: bool, dtype: str, mix: str = "*") -> float:
        """Measured / predicted whole-model time on this device for a model of op mix `mix`
        (1 when not fitted)."""
        return self.assembly.scale(train, dtype, mix) if self.assembly is not None else 1.0

    def measured_time(self, part, batch: int, dtype: str, train: bool) -> float | None:
        """Seconds the profile measured for exactly this part, if it did."""
        if not self.measured:
            return None
        from perfmodel.predict.measured import part_block_key

        key = part_block_key(part, batch, dtype, train)
        return self.measured.get(key) if key is not None else None

    def neighbour_scale(self, part, batch: int, dtype: str, train: bool) -> float:
        """Correction of an unmeasured block's calibrated sum of ops by the residuals of its
        measured neighbours (`perfmodel.predict.neighbours`), 1.0 when it has none."""
        from perfmodel.predict.measured import part_block_key
        from perfmodel.predict.neighbours import NeighbourIndex, corrected, part_place

        table = self.calibration.get(dtype).residuals
        if not table:
            return 1.0
        key = ("neighbours", part.key, part.input_shape, part.input_grad, batch, dtype, train)
        hit = self._parts.get(key)  # cached with the priced parts: ranking re-uses blocks
        if hit is None:
            place = part_place(part, batch)
            phase = "fwd_bwd" if train else "fwd"
            if place is None or not corrected(place[0], phase):
                hit = 1.0
            else:
                cached = self._parts.get(("neighbour-index", dtype))
                if cached is None or cached[0] is not table:  # built from this very table
                    cached = self._parts[("neighbour-index", dtype)] = (table,
                                                                        NeighbourIndex(table))
                index = cached[1]
                # never its own measurement, whether or not its input needs a gradient
                own = part_block_key(part, batch, dtype, train, require_grad=False)
                # a Llama-style block without Llama-style neighbours (a profile that did not
                # time them, or none near it): the GPT-style blocks' correction
                fallback = "transformer" if place[0] == "llama" else None
                hit = index.scale(place[1], phase, exclude=own, dtype=dtype, family=place[0],
                                  fallback=fallback)
            self._parts[key] = hit
        return hit

    def part_features(self, part, count, batch: int, dtype: str, train: bool):
        """(calibration features, summed per-op energy, time, lower and upper time) of a
        counted part, cached per distinct part: ranking re-uses every block it has priced."""
        key = part_key(part, batch, dtype, train, count.fused, count.gemm_dtype)
        hit = self._parts.get(key)
        if hit is None:
            self.price_parts([(part, count, batch, dtype, train)])
            hit = self._parts[key]
        return hit

    def price_parts(self, items) -> None:
        """Price many counted parts with one per-op prediction over all their new ops.

        `items`: (part, PartCount, batch, dtype, train) tuples; results land in the cache.
        """
        todo: dict[tuple, object] = {}
        for part, count, batch, dtype, train in items:
            key = part_key(part, batch, dtype, train, count.fused, count.gemm_dtype)
            if key not in self._parts and key not in todo:
                todo[key] = count
        if not todo:
            return
        rows, row_idx, frames, frame_idx = [], [], [], []
        for i, count in enumerate(todo.values()):
            if count.rows is not None:
                rows.extend(count.rows)
                row_idx.append(np.full(len(count.rows), i))
            elif count.n_ops:
                frames.append(count.ops)
                frame_idx.append(np.full(count.n_ops, i))
        pieces = ([pd.DataFrame(rows)] if rows else []) + frames
        empty = (np.zeros(len(FEATURES)), 0.0, 0.0, 0.0, 0.0)
        if not pieces:
            for key in todo:
                self._parts[key] = empty
            return
        big = pd.concat(pieces, ignore_index=True) if len(pieces) > 1 else pieces[0]
        idx = np.concatenate(row_idx + frame_idx)
        pred = self.optimes.predict(big)
        t = pred["time_s"].to_numpy()
        n = len(todo)
        cols = feature_columns(big, t)
        x = np.column_stack([np.bincount(idx, weights=c, minlength=n) for c in cols])
        e = np.bincount(idx, weights=np.nan_to_num(pred["energy_j"].to_numpy()), minlength=n)
        ts = np.bincount(idx, weights=t, minlength=n)
        lo = np.bincount(idx, weights=pred["time_lo_s"].to_numpy(), minlength=n)
        hi = np.bincount(idx, weights=pred["time_hi_s"].to_numpy(), minlength=n)  # NaN stays
        for i, key in enumerate(todo):
            self._parts[key] = (x[i], float(e[i]), float(ts[i]), float(lo[i]), float(hi[i]))

    def optimizer_features(self, part, count, optimizer: str, dtype: str) -> np.ndarray:
        """Calibration features of the optimizer kernels over a part's parameters (cached)."""
        numels = count.owned_numels(part)  # a tied weight is updated once, by its owner
        key = ("optimizer", optimizer, dtype, tuple(numels))
        hit = self._parts.get(key)
        if hit is None:
            self.price_tensors(optimizer, dtype, numels)
            hit = np.zeros(len(FEATURES))
            for n in numels:
                hit = hit + self._parts[("optimizer-tensor", optimizer, dtype, n)]
            self._parts[key] = hit
        return hit

    def price_tensors(self, optimizer: str, dtype: str, numels) -> None:
        """Price the optimizer kernels of parameter tensors of the given sizes (cached)."""
        from perfmodel.predict.optimizer import KERNELS, canonical_optimizer, optimizer_ops

        new = sorted({int(n) for n in numels
                      if ("optimizer-tensor", optimizer, dtype, int(n)) not in self._parts})
        if not new:
            return
        per = len(KERNELS[canonical_optimizer(optimizer)])
        ops = optimizer_ops(optimizer, new, dtype)
        if not len(ops):
            for n in new:
                self._parts[("optimizer-tensor", optimizer, dtype, n)] = np.zeros(len(FEATURES))
            return
        t = self.optimes.predict(ops)["time_s"].to_numpy()
        idx = np.repeat(np.arange(len(new)), per)
        cols = feature_columns(ops, t)
        x = np.column_stack([np.bincount(idx, weights=c, minlength=len(new)) for c in cols])
        for i, n in enumerate(new):
            self._parts[("optimizer-tensor", optimizer, dtype, n)] = x[i]

    @property
    def source(self) -> str:
        """Short name of the method: learned|roofline, + '+blocks' when calibrated."""
        s = self.optimes.source
        return s + ("+blocks" if self.calibration.calibrated else "")

    def energy_power_w(self) -> float:
        """Average watts for energy = power x time when no per-op energy is known."""
        if np.isfinite(self.calibration.power_w):
            return self.calibration.power_w
        tdp = float(getattr(self.device, "tdp_w", float("nan")))
        return tdp if np.isfinite(tdp) and self.device.kind != "cpu" else float("nan")


def part_key(part, batch: int, dtype: str, train: bool, fused: bool = False,
             gemm_dtype: str | None = None) -> tuple:
    """Cache key of a priced part (`fused`: its compiled op list; `gemm_dtype`: its GEMMs'
    own dtype, as in an FP8 recipe)."""
    return (part.key, part.input_shape, part.input_kind, part.input_grad, batch, dtype, train,
            fused, gemm_dtype)


_BACKENDS: dict[str, Backend] = {}


def is_profile(path: Path) -> bool:
    return (path / "metadata.json").is_file()


def is_saved_predictor(path: Path) -> bool:
    return (path / "predictor.json").is_file()


def resolve_backend(device=None) -> Backend:
    """The `Backend` for a profile dir, a saved predictor dir or a device name (default cpu)."""
    key = str(device) if device is not None else "cpu"
    hit = _BACKENDS.get(key)
    if hit is None:
        hit = _BACKENDS[key] = _resolve(key)
    return hit


def _resolve(text: str) -> Backend:
    from perfmodel.hardware.catalogue import get_device

    path = Path(text).expanduser()
    if path.is_dir():
        if is_profile(path):
            return from_profile(path)
        if is_saved_predictor(path):
            from perfmodel.learn.predictor import load

            pred = load(path)
            return Backend(pred.device, OpTimes(pred.device, pred), Calibrations(), "predictor",
                           f"saved predictor {path} (learned per-op, uncalibrated sum of ops)",
                           None)
        raise PerfmodelError(f"{path}: neither a profile (metadata.json) nor a saved predictor "
                             "(predictor.json)")
    if ("/" in text or text.startswith(".")) and not path.exists():
        raise PerfmodelError(f"{path}: no such profile or predictor directory")
    spec = get_device(text)
    shipped, exact = find_shipped_profile(spec)
    if shipped is not None:
        b = from_profile(shipped, spec)
        other = "" if exact else ", measured on another CPU model"
        b.description = f"shipped profile {shipped} for {spec.key}{other} ({b.description})"
        return b
    power = spec.tdp_w if spec.kind != "cpu" else None
    return Backend(spec, OpTimes(spec, None, power_w=power), Calibrations(), "roofline",
                   f"catalogue {spec.key} ({spec.name}) + roofline: no profile of this device "
                   "under datasets/ (roofline times are optimistic lower bounds)", None)


def find_shipped_profile(spec) -> tuple[Path | None, bool]:
    """(the shipped profile that best matches `spec`, whether it matches exactly).

    Same catalogue key; for a CPU the same processor name first, else another CPU's
    profile (its calibration still beats the bare roofline); newest first.
    """
    root = datasets_dir()
    if not root.is_dir():
        return None, False
    found = []
    for meta_path in sorted(root.glob("*/metadata.json")):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("catalogue_key") != spec.key:
            continue
        if not (meta_path.parent / "measurements.parquet").is_file():
            continue
        exact = spec.kind != "cpu" or meta.get("device_name") in (None, spec.name)
        found.append((exact, str(meta.get("created", "")), meta_path.parent))
    if not found:
        return None, False
    exact, _, path = sorted(found)[-1]
    return path, exact


def read_profile_rows(path: Path) -> pd.DataFrame:
    """The ok rows of a profile's measurements.parquet."""
    file = Path(path) / "measurements.parquet"
    if not file.is_file():
        raise PerfmodelError(f"{path}: profile has no measurements.parquet")
    df = pd.read_parquet(file)
    if "status" in df.columns:
        df = df[df["status"].astype(str) == "ok"]
    return df.reset_index(drop=True)


def profile_digest(path: Path, spec=None) -> str:
    """SHA-256 (16 hex digits) of a profile's measurements and of the code that fits on them.

    The code part (`perfmodel.learn`, the calibration and per-op pricing sources, and the
    blocks suite's block classes the calibration rebuilds) makes a changed feature set or
    fit refit instead of loading a stale cached one; so do the metadata fields the fit reads
    (`DIGEST_METADATA`: the device it names, and the thread count that decides whether the
    native 1x1 lines replace the learned times), and the device spec the fit prices with
    (`spec`: a CPU profile's is the local CPU's, whose cores, clock and ISA set the
    roofline features: a cache shared between machines, such as a home directory on a
    cluster, must not hand one machine's fit to another).
    """
    h = hashlib.sha256((Path(path) / "measurements.parquet").read_bytes())
    meta_path = Path(path) / "metadata.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    h.update(json.dumps({k: meta.get(k) for k in DIGEST_METADATA}, sort_keys=True).encode())
    if spec is not None:
        h.update(json.dumps(spec_fingerprint(spec), sort_keys=True, default=str).encode())
    h.update(_code_digest().encode())
    return h.hexdigest()[:16]


def spec_fingerprint(spec) -> dict:
    """The fields of a device spec that a fit's features and roofline read. A clock read
    from `/proc/cpuinfo`'s "cpu MHz" is the current one, which moves from call to call on
    some machines: then the peaks enter per hertz (the core count and ISA), so the cache
    is not refitted on every call."""
    extra = getattr(spec, "extra", None) or {}
    out = dict(key=spec.key, name=spec.name, kind=spec.kind, units=spec.sm_count,
               bandwidth=spec.memory_bandwidth, l2=spec.l2_bytes,
               architecture=getattr(spec, "architecture", None), flags=extra.get("flags"))
    if "cpu MHz" in str(extra.get("frequency_source", "")) and spec.boost_clock_hz > 0:
        out["peaks_per_hz"] = sorted((k, round(v / spec.boost_clock_hz, 3))
                                     for k, v in dict(spec.peak_flops).items())
    else:
        out.update(clock_hz=spec.boost_clock_hz, peaks=sorted(dict(spec.peak_flops).items()))
    return out


_CODE_DIGEST: list[str] = []


def _code_digest() -> str:
    if not _CODE_DIGEST:
        here = Path(__file__).resolve().parent
        # the per-op tables the calibration prices come from the counter, the analytic
        # parts and the op formulas
        files = sorted((here.parent / "learn").glob("*.py")) + [
            here / "calibration.py", here / "optimes.py", here / "counts.py",
            here / "native.py", here / "measured.py", here / "device.py",
            here / "neighbours.py", here / "analytic.py"] + sorted(
            (here.parent / "counting").glob("*.py")) + sorted((here.parent / "ops").glob("*.py"))
        # the block classes and configs the calibration rebuilds its rows with (the blocks
        # suite is installed beside perfmodel; absent, block rows cannot be rebuilt at all)
        files += [here.parent / "models" / f for f in (
            "anynet.py", "effnet.py", "layers.py", "transformer.py", "transformer_config.py")]
        files += [f for f in [here.parents[1] / "profilers" / "suites" / "blocks.py"] if f.is_file()]
        h = hashlib.sha256()
        for f in files:
            h.update(f.name.encode() + f.read_bytes())
        _CODE_DIGEST.append(h.hexdigest())
    return _CODE_DIGEST[0]


def _model_code_digest() -> str:
    """SHA-256 of the code a whole-model prediction runs (models, counting, predict): a
    cached whole-model scale is refitted when any of it changes."""
    if len(_CODE_DIGEST) < 2:
        root = Path(__file__).resolve().parents[1]
        h = hashlib.sha256(_code_digest().encode())
        for sub in ("models", "counting", "predict", "ops"):
            for f in sorted((root / sub).glob("*.py")):
                h.update(f"{sub}/{f.name}".encode() + f.read_bytes())
        _CODE_DIGEST.append(h.hexdigest())
    return _CODE_DIGEST[1]


def from_profile(path: Path, spec=None) -> Backend:
    """Backend of a profile directory: per-op predictor (or roofline) + blocks calibration."""
    from perfmodel.hardware.catalogue import get_device

    path = Path(path)
    meta = json.loads((path / "metadata.json").read_text())
    if spec is None:
        spec = get_device(meta.get("catalogue_key") or meta.get("device_name") or "cpu")
    rows = read_profile_rows(path)
    digest = profile_digest(path, spec)
    from perfmodel.predict.measured import with_center_times

    # per-op suites: learn each point's median over its measurements (`center_time`)
    per_op = with_center_times(rows[~rows["suite"].astype(str).isin(PER_OP_EXCLUDED)])
    predictor, how = None, "roofline per op"
    if 0 < len(per_op) < MIN_PER_OP_ROWS:
        how += (f" ({len(per_op)} per-op rows, under the {MIN_PER_OP_ROWS} a learned "
                "predictor is fitted on)")
    if len(per_op) >= MIN_PER_OP_ROWS:
        per_op = per_op.copy()
        if "group" not in per_op.columns and "params" in per_op.columns:
            # one group per measured shape: its dtypes and phases stay on one side of a split
            per_op["group"] = per_op["op"].astype(str) + "|" + per_op["params"].astype(str)
        # the learned predictor works out FLOPs and bytes from the shapes itself
        per_op = per_op.drop(columns=[c for c in ("flops", "bytes") if c in per_op.columns])
        where = cache_dir() / f"predictor-v{CACHE_VERSION}-{digest}" / "predictor.json"
        if not where.is_file():  # a minute or so on a laptop: say why nothing prints yet
            n_blocks = int((rows["suite"].astype(str) == "blocks").sum())
            print(f"perfmodel: first use of {path}: fitting its per-op predictor and block "
                  f"calibration on {len(per_op)} + {n_blocks} measurements (once; cached in "
                  f"{cache_dir()})", file=sys.stderr, flush=True)
        try:
            predictor = _cached_predictor(per_op, spec, digest)
            how = f"learned per-op predictor on {len(per_op)} per-op rows"
            unlearned = [k for k in MAIN_KINDS if k not in predictor.kinds]
            if unlearned:  # the profile measured none of them: a model's share is bare roofline
                how += (f" (roofline for {', '.join(unlearned)} ops: none measured, or too "
                        "few to learn from)")
        except Exception as exc:  # noqa: BLE001  (say so and use the roofline)
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            how = f"roofline per op (fitting a per-op predictor failed: {msg})"
    optimes = OpTimes(spec, predictor)
    if predictor is not None:
        from perfmodel.predict.native import fit_native

        optimes.native = fit_native(per_op, single_thread=meta.get("torch_threads") == 1)
    blocks = rows[rows["suite"].astype(str) == "blocks"]
    calibration = _cached_calibration(blocks, optimes, digest)
    optimes.power_w = calibration.power_w if np.isfinite(calibration.power_w) else None
    cal = (f"sum of ops calibrated on {calibration.rows} block measurements"
           if calibration.calibrated else "no block measurements: uncalibrated sum of ops")
    from perfmodel.predict.measured import block_table

    measured = block_table(blocks)
    if measured:
        cal += f"; {len(measured)} measured blocks used as they are"
    backend = Backend(spec, optimes, calibration, "profile", f"profile {path}: {how}; {cal}",
                      path, measured)
    threads = meta.get("torch_threads")
    if spec.kind == "cpu" and isinstance(threads, int) and threads > 0:
        backend.description += (f"; measured with {threads} torch thread"
                                f"{'s' if threads > 1 else ''}: predictions are for "
                                f"torch.set_num_threads({threads})")
    if len(per_op):
        # every dtype its per-op suites measured (a CPU's catalogue may lack a bfloat16
        # peak the profile's own measurements price without)
        backend.measured_dtypes = frozenset(per_op["dtype"].astype(str).unique())
    validation = rows[rows["suite"].astype(str) == "validation"]
    if len(validation):
        from perfmodel.predict.resolution import fit_resolution

        preds = cached_fold_predictions(backend, validation, digest, "base")
        backend.assembly = scale_of(preds, "base")
        backend.resolution = fit_resolution(preds, "base")
        backend.interval = cached_interval(backend, validation, digest, "base")
        backend.description += ("; " + backend.assembly.describe() + "; "
                                + backend.interval.describe())
    return backend


def gemm_peaks(rows: pd.DataFrame) -> dict[str, float]:
    """Per dtype, the fastest FLOP/s among a profile's gemm-suite points (their FLOPs over
    their median time, `time_center_s` where repeated): the profile's measured peak, what
    MFU is set against beside the catalogue's."""
    if not len(rows) or "suite" not in rows.columns or "flops" not in rows.columns:
        return {}
    g = rows[(rows["suite"].astype(str) == "gemm") & (rows["status"].astype(str) == "ok")
             if "status" in rows.columns else rows["suite"].astype(str) == "gemm"]
    if not len(g):
        return {}
    t = pd.to_numeric(g.get("time_center_s", g["time_s"]), errors="coerce")
    t = t.where(t > 0, pd.to_numeric(g["time_s"], errors="coerce"))
    rate = pd.to_numeric(g["flops"], errors="coerce") / t
    rate = rate[np.isfinite(rate) & (rate > 0)]
    return {str(k): float(v) for k, v in rate.groupby(g.loc[rate.index, "dtype"].astype(str)).max().items()}


def cached_fold_predictions(backend: Backend, validation: pd.DataFrame, digest: str,
                            fold: str) -> pd.DataFrame:
    """`assembly.fold_predictions` of a backend without a scale, cached on disk."""
    import dataclasses

    from perfmodel.predict.assembly import PREDICTION_COLUMNS, fold_predictions

    blocks = "blocks" if backend.measured else "noblocks"
    where = cache_dir() / (f"foldpred-v{CACHE_VERSION}-{digest}-{_model_code_digest()[:12]}-"
                           f"{backend.optimes.source}-{blocks}-{fold}.json")

    def load(text: str) -> _Records:
        d = json.loads(text)
        if d.get("columns") != list(PREDICTION_COLUMNS):
            raise ValueError("other columns")
        return _Records(pd.DataFrame(d["rows"], columns=d["columns"]))

    return _json_cached(where, load, lambda: _Records(fold_predictions(
        dataclasses.replace(backend, assembly=None), validation, fold))).frame


@dataclass
class _Records:
    """A frame that `_json_cached` can write (column names and rows)."""

    frame: pd.DataFrame

    def to_json(self) -> str:
        return json.dumps({"columns": list(self.frame.columns),
                           "rows": self.frame.astype(object).values.tolist()})


def cached_assembly(backend: Backend, validation: pd.DataFrame, digest: str, fold: str):
    """The whole-model scale fitted on one fold (`assembly.scale_of`), from the cached
    predictions of the fold by a backend without a scale."""
    return scale_of(cached_fold_predictions(backend, validation, digest, fold), fold)


def cached_interval(backend: Backend, validation: pd.DataFrame, digest: str, fold: str):
    """The whole-model interval fitted on one fold (`interval.fit_model_interval`): the
    fold as `backend` predicts it, and with no block measurement used."""
    import dataclasses

    from perfmodel.predict.interval import ModelInterval, fit_model_interval

    def make():
        blocks = cached_fold_predictions(backend, validation, digest, fold)
        ops = (cached_fold_predictions(dataclasses.replace(backend, measured={}, _parts={}),
                                       validation, digest, fold) if backend.measured else blocks)
        return fit_model_interval(blocks, ops, fold)

    where = cache_dir() / (f"interval-v{CACHE_VERSION}-{digest}-{_model_code_digest()[:12]}-"
                           f"{backend.optimes.source}-{'blocks' if backend.measured else 'noblocks'}"
                           f"-{fold}.json")
    return _json_cached(where, ModelInterval.from_json, make)


def _json_cached(where: Path, load, make):
    """`load(text)` of the cache file `where`, else `make()`, written there as `.to_json()`
    (an unreadable cache file is refitted; a cache that cannot be written is skipped)."""
    if where.is_file():
        try:
            return load(where.read_text())
        except (ValueError, TypeError, KeyError):
            pass
    fit = make()
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_text(fit.to_json())
    except OSError:
        pass
    return fit


def _cached_predictor(per_op: pd.DataFrame, spec, digest: str):
    from perfmodel.learn.predictor import fit, load

    where = cache_dir() / f"predictor-v{CACHE_VERSION}-{digest}"
    if (where / "predictor.json").is_file():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return load(where)
        except PerfmodelError:
            pass
    pred = fit(per_op, spec)
    try:
        pred.save(where)
    except OSError:
        pass
    return pred


def _cached_calibration(blocks: pd.DataFrame, optimes: OpTimes, digest: str) -> Calibrations:
    where = cache_dir() / f"calibration-v{CACHE_VERSION}-{digest}-{optimes.source}.json"
    return _json_cached(where, Calibrations.from_json,
                        lambda: calibrate_on_blocks(blocks, optimes))


def calibrate_on_blocks(blocks: pd.DataFrame, optimes: OpTimes) -> Calibrations:
    """Fit calibrations on a profile's `blocks` rows (identity where there are too few)."""
    if len(blocks) < 1:
        return Calibrations()
    if "time_iqr_s" in blocks.columns:  # too noisy to calibrate on (shared machine, warm-up)
        rel = pd.to_numeric(blocks["time_iqr_s"], errors="coerce") / blocks["time_s"].astype(float)
        steady = blocks[~(rel > MAX_REL_IQR)]
        if len(steady) >= MIN_BLOCK_ROWS:
            blocks = steady
    from perfmodel.predict.measured import _row_key
    from perfmodel.predict.neighbours import corrected, key_place

    X, y, groups, power, dtypes, near = [], [], [], [], [], []
    for _, row in blocks.iterrows():
        try:
            ops = block_ops(row)
        except PerfmodelError:
            continue
        t = optimes.predict(ops)["time_s"].to_numpy()
        X.append(features(ops, t))
        y.append(center_time(row))
        p = json.loads(row["params"]) if isinstance(row.get("params"), str) else {}
        key = _row_key(str(row["op"]), p, str(row["dtype"]), str(row["phase"]))
        place = key_place(key)
        near.append(None if place is None or not corrected(place[0], str(row["phase"])) else
                    [list(place[1]), str(row["phase"]), list(key)])
        groups.append(json.dumps({k: v for k, v in sorted(p.items())}, default=str)
                      + str(row["op"]))
        e = row.get("energy_j")
        power.append(float(e) / float(row["time_s"]) if e is not None and pd.notna(e) else np.nan)
        dtypes.append(str(row["dtype"]))
    if len(y) < MIN_BLOCK_ROWS:
        return Calibrations(pooled=Calibration(info={"reason": f"only {len(y)} block rows"}))
    X, y, groups, dtypes = np.array(X), np.array(y), np.array(groups), np.array(dtypes)
    pw = np.array(power, dtype=float)
    # classes priced by the learned model of measured kernels keep their times (coefficient
    # 1); the fit prices the per-op overheads and the classes the roofline prices
    predictor = getattr(optimes, "predictor", None)
    pinned = measured_classes(predictor.kinds if predictor is not None else ())
    out = Calibrations(pooled=fit_calibration(X, y, groups, pinned=pinned))
    for dt in np.unique(dtypes):
        sel = dtypes == dt
        if sel.sum() >= MIN_BLOCK_ROWS:
            out.by_dtype[str(dt)] = fit_calibration(X[sel], y[sel], groups[sel], pinned=pinned)
            if np.isfinite(pw[sel]).sum() >= 3:
                out.by_dtype[str(dt)].power_w = float(np.nanmedian(pw[sel]))
    for i, entry in enumerate(near):  # residuals of the measured blocks
        cal = out.get(str(dtypes[i]))
        pred = float(np.dot(cal.beta, X[i]))
        if entry is not None and pred > 0 and y[i] > 0:
            cal.residuals.append(entry + [float(np.log(y[i] / pred))])
    if np.isfinite(pw).sum() >= 3:
        out.pooled.power_w = float(np.nanmedian(pw))
    return out


def block_ops(row) -> pd.DataFrame:
    """The counted op table of one `blocks` measurement (perfmodel's own block classes)."""
    import torch

    from perfmodel.counting.counter import count_model
    from perfmodel.predict.counts import InputGrad, torch_dtype

    try:
        from profilers.suites.blocks import TRANSFORMER_BLOCKS, build_block
    except ImportError as exc:
        raise PerfmodelError(f"cannot rebuild blocks without profilers: {exc}") from None
    p = json.loads(row["params"])
    op, phase, dtype = str(row["op"]), str(row["phase"]), str(row["dtype"])
    tdtype = torch_dtype(dtype)
    try:
        with torch.device("meta"):
            module = build_block(op, p)
    except Exception as exc:  # an unknown block name or bad parameters
        raise PerfmodelError(f"block {op}: {exc}") from None
    module = module.to(dtype=tdtype)
    if op in TRANSFORMER_BLOCKS:
        shape = (p["batch"], p["seq_q"], p["d_model"])
    else:
        shape = (p["batch"], p["c_in"], p["h"], p["w"])
    x = torch.empty(shape, dtype=tdtype, device="meta")
    train = phase == "fwd_bwd"
    m = InputGrad(module) if train else module.eval()
    try:
        return count_model(m, inputs=(x,), dtype=dtype, backward=train).to_frame()
    except PerfmodelError:
        raise
    except Exception as exc:
        raise PerfmodelError(f"block {op}: {exc}") from None
