"""Network blocks, forward and forward+backward: ResNet bottleneck, RegNet X/Y, MBConv,
attention, transformer MLP, a full GPT-style transformer block and a Llama-style one, over
width, resolution or sequence length, and batch. The block classes are perfmodel.models' own.

The Llama-style block (`llama_block`: RMSNorm, rotary positions, SwiGLU, grouped-query
attention, no biases) runs many more small ops than the GPT-style one (a composite RMSNorm,
the rotary slices and products, three MLP matrices and their gate); calibrating sums of ops
on GPT-style blocks alone priced those ops by another block's mix. Its grid is sampled
apart from the other transformer blocks', so adding it left their points (and ids) as they
were, though not the order a run measures them in; it leaves out the shapes of the held-out
Llama family's blocks (`held_out_llama_dims`).

Two sources of points, measured alternately: a random sample of the grid below, and the
distinct residual and transformer blocks of the models the `validation` suite measures
(the scaled candidates, at their batch sizes and resolution): a profile thereby times the
building blocks of the scaling candidates users rank, which perfmodel then uses as they
are ("a measured block beats a sum of ops"), while the validation suite still checks the
whole model (stem, head, loss, optimizer step and the blocks put together).
"""
from __future__ import annotations

import contextlib

from profilers.points import Point, Workload
from profilers.suites.base import (Suite, log2, math_mode, model_cost, one_hot, randn,
                                   register_suite, sample_grid, torch_dtype)

CNN_BLOCKS = ("resnet_bottleneck", "regnet_x_block", "regnet_y_block", "mbconv")
GPT_BLOCKS = ("attention", "transformer_mlp", "transformer_block")
LLAMA_BLOCKS = ("llama_block",)
TRANSFORMER_BLOCKS = GPT_BLOCKS + LLAMA_BLOCKS
BLOCKS = CNN_BLOCKS + TRANSFORMER_BLOCKS
PHASES = ("fwd", "fwd_bwd")
ALL_DTYPES = ("float32", "tf32", "float16", "bfloat16")

GPU = dict(dtypes=ALL_DTYPES, batch=(8, 16, 32, 64, 128), width=(32, 64, 128, 256, 512, 1024),
           res=(7, 14, 28, 56, 112), max_elems=6e7, t_batch=(1, 2, 4, 8, 16, 32),
           d_model=(256, 512, 768, 1024, 1536, 2048, 4096), seq=(128, 256, 512, 1024, 2048, 4096),
           max_tokens_width=6e7, pool=4000)
CPU = dict(dtypes=("float32", "bfloat16"), batch=(1, 2, 4, 8),
           width=(16, 32, 64, 128, 256, 512, 1024), res=(2, 4, 7, 14, 28, 56), max_elems=1.5e6, t_batch=(1, 2, 4, 8),
           d_model=(64, 128, 256, 384, 512), seq=(32, 64, 128, 256),
           max_tokens_width=2.5e5, pool=2500)


def _cnn_params(block: str, width: int) -> dict:
    """Block constructor arguments for a block kind at output width `width`."""
    if block == "resnet_bottleneck":  # ResNet: 4x bottleneck, one group
        return dict(bot_mul=0.25, group_w=max(1, width // 4), se_r=0.0)
    if block in ("regnet_x_block", "regnet_y_block"):
        return dict(bot_mul=1.0, group_w=min(width, 16), se_r=0.25 if block == "regnet_y_block" else 0.0)
    return dict(exp_r=6.0, se_r=0.25)  # mbconv


def transformer_cfg(d_model: int, seq: int):
    """A GPT-style (pre-norm LayerNorm, GELU MLP, learned positions, causal) one-layer config."""
    from perfmodel.models.transformer_config import TransformerConfig

    heads = max(1, d_model // 64)
    return TransformerConfig(name=f"block-d{d_model}", d_model=d_model, n_layers=1, n_heads=heads,
                             d_ff=4 * d_model, vocab_size=1, seq_len=seq)


def llama_cfg(d_model: int, seq: int):
    """A Llama-style one-layer config (pre-norm RMSNorm, rotary positions, SwiGLU, no
    biases, causal): heads of 64, a quarter as many key/value heads (grouped-query
    attention, as Llama 3's 32/8), and Llama 2's MLP width rule, 8/3 d_model rounded up
    to a multiple of 64 (Llama 2 rounds to 256: too coarse for a 64-wide block)."""
    from perfmodel.models.transformer_config import TransformerConfig

    heads = max(1, d_model // 64)
    d_ff = -(-8 * d_model // (3 * 64)) * 64
    return TransformerConfig(name=f"llama-block-d{d_model}", d_model=d_model, n_layers=1,
                             n_heads=heads, n_kv_heads=max(1, heads // 4), d_ff=d_ff,
                             vocab_size=1, seq_len=seq, mlp="swiglu", norm="rmsnorm",
                             position="rope", bias=False, tied_embeddings=False)


def transformer_point_args(op: str, batch: int, d_model: int, seq: int) -> dict:
    """The parameters of a transformer block point. GPT-style points keep the fields they
    always had (their ids are what a resumed run or `--after` matches); Llama-style points
    record their config's heads, key/value heads and widths."""
    if op in LLAMA_BLOCKS:
        cfg = llama_cfg(d_model, seq)
        return dict(batch=batch, seq_q=seq, seq_k=seq, d_model=d_model, heads=cfg.n_heads,
                    kv_heads=cfg.kv_heads, head_dim=cfg.head_dim, d_ff=cfg.d_ff, causal=True)
    return dict(batch=batch, seq_q=seq, seq_k=seq, d_model=d_model, heads=max(1, d_model // 64),
                head_dim=64 if d_model >= 64 else d_model, d_ff=4 * d_model, causal=True)


def build_block(op: str, p: dict):
    """The nn.Module of a block point (perfmodel.models classes)."""
    if op in TRANSFORMER_BLOCKS:
        from perfmodel.models.transformer import MLP, Attention, TransformerBlock

        if op in LLAMA_BLOCKS:
            return TransformerBlock(llama_cfg(p["d_model"], p["seq_q"]))
        cls = {"attention": Attention, "transformer_mlp": MLP, "transformer_block": TransformerBlock}[op]
        return cls(transformer_cfg(p["d_model"], p["seq_q"]))
    if op == "mbconv":
        from perfmodel.models.effnet import MBConv

        return MBConv(p["c_in"], p["exp_r"], p["kernel_h"], p["stride"], p["se_r"], p["c_out"])
    from perfmodel.models.anynet import ResBottleneckBlock

    return ResBottleneckBlock(p["c_in"], p["c_out"], p["stride"], p["bot_mul"], p["group_w"], p["se_r"])


def held_out_llama_dims(device) -> set[tuple[int, int, int]]:
    """(d_model, tokens, batch) of the held-out Llama family's blocks in the validation
    suite: no Llama grid block sits exactly there, so the family stays a model the profile
    never measured in part (its blocks take neighbours of other shapes)."""
    from perfmodel.models.registry import resolve
    from perfmodel.predict.parts import parts_of
    from perfmodel.predict.targets import HELD_OUT_BASE
    from profilers.suites.validation import validation_models

    out = set()
    for model, factor, strategy, batch, overrides in validation_models(device):
        if model != HELD_OUT_BASE:
            continue
        for part in parts_of(resolve(model, factor, strategy or None, **overrides), loss=False):
            if part.key and part.key[0] == "transformer_block":
                out.add((int(part.key[1].d_model), int(part.key[2]), int(batch)))
    return out


def candidate_blocks(device) -> list[Point]:
    """The distinct blocks of the validation suite's models, fwd and fwd_bwd: the CNN's and
    the transformer's alternately, each in the order the validation suite lists its models,
    so a budget that ends early still has blocks of both families."""
    return _candidate_blocks(device)[0]


def ranked_blocks(device) -> set[str]:
    """Ids of the candidate blocks that stand in for parts of a ranked candidate's
    training step (`validation.is_ranked`): fwd_bwd blocks of those models."""
    return _candidate_blocks(device)[1]


def _candidate_blocks(device) -> tuple[list[Point], set[str]]:
    from perfmodel.models.registry import resolve
    from perfmodel.predict.measured import suite_compatible
    from perfmodel.predict.parts import parts_of
    from profilers.suites.validation import CPU as V_CPU
    from profilers.suites.validation import GPU as V_GPU
    from profilers.suites.validation import is_ranked, validation_models

    dtypes = [d for d in (V_GPU if device.kind == "cuda" else V_CPU)["dtypes"]
              if device.supports(d)[0]]
    families: dict[str, list[Point]] = {}
    seen, ranked = set(), set()
    from perfmodel.predict.targets import HELD_OUT_MODELS

    for model, factor, strategy, batch, overrides in validation_models(device):
        if model in HELD_OUT_MODELS:  # scored as a model never measured in part
            continue
        points = families.setdefault(model, [])
        params = resolve(model, factor, strategy or None, **overrides)
        for part in parts_of(params, loss=False):
            kind = part.key[0] if part.key else None
            if kind == "res_bottleneck_block":
                (w_in, w_out, stride, bm, gw, se_r, act), h = part.key[1], part.key[2]
                if act != "relu":
                    continue
                op = "regnet_y_block" if se_r else "regnet_x_block"
                args = dict(batch=batch, c_in=w_in, c_out=w_out, h=h, w=h, stride=stride,
                            kernel_h=3, kernel_w=3, bot_mul=float(bm or 1.0),
                            group_w=int(gw or 1), se_r=float(se_r))
            elif kind == "transformer_block" and suite_compatible(part.key[1]):
                d, seq = part.key[1].d_model, part.key[2]
                op = "transformer_block"
                args = transformer_point_args(op, batch, d, seq)
            else:
                continue
            for dtype in dtypes:
                for phase in PHASES:
                    point = Point.make("blocks", op, phase, dtype, **args)
                    if phase == "fwd_bwd" and is_ranked(factor, strategy, "train_step"):
                        ranked.add(point.id)
                    if point.id not in seen:
                        seen.add(point.id)
                        points.append(point)
    lists = list(families.values())
    order = [f[i] for i in range(max(map(len, lists), default=0)) for f in lists if i < len(f)]
    return order, ranked


@register_suite
class BlocksSuite(Suite):
    name = "blocks"
    weight = 3.0
    # The validation models' own blocks stand in for parts of those models, so they are
    # timed again, in rounds after the suite's points (perfmodel takes the median,
    # `time_center_s`): once on a GPU, twice on a CPU, and on a CPU the blocks of the
    # ranked candidates' training steps (`ranked_blocks`) up to five times, as the
    # validation suite does with those models; the grid points, which only calibrate sums
    # of ops, are not repeated.
    repeat_fraction = 0.15
    max_repeats = 1
    interleave_repeats = False
    cpu_repeats = dict(repeat_fraction=0.4, max_repeats=2, ranked_repeats=5)

    def __init__(self) -> None:
        self._models: set[str] = set()
        self._ranked: set[str] = set()

    def ranked(self, point: Point) -> bool:
        return point.id in self._ranked

    def repeats_of(self, point: Point) -> int:
        return super().repeats_of(point) if point.id in self._models else 0

    def timing_budget_s(self, device) -> float:
        return 0.8 if device.kind == "cuda" else 0.6

    def candidates(self, device) -> list[Point]:
        import perfmodel.models.anynet  # noqa: F401  (the suite needs perfmodel's blocks)

        g = GPU if device.kind == "cuda" else CPU
        dtypes = tuple(d for d in g["dtypes"] if device.supports(d)[0])
        points = []
        cnn = sample_grid(dict(op=CNN_BLOCKS, batch=g["batch"], width=g["width"], res=g["res"],
                               stride=(1, 2), k=(3, 5), dtype=dtypes, phase=PHASES),
                          g["pool"], 11,
                          lambda c: c["batch"] * c["width"] * c["res"] ** 2 <= g["max_elems"]
                          and c["res"] >= 4 * c["stride"] and (c["op"] == "mbconv" or c["k"] == 3))
        for c in cnn:
            w_in = c["width"] // 2 if c["stride"] == 2 else c["width"]
            if c["op"] == "mbconv":
                w_in = max(16, c["width"] // 2) if c["stride"] == 2 else c["width"]
            extra = _cnn_params(c["op"], c["width"])
            points.append(Point.make(self.name, c["op"], c["phase"], c["dtype"], batch=c["batch"],
                                     c_in=w_in, c_out=c["width"], h=c["res"], w=c["res"],
                                     stride=c["stride"], kernel_h=c["k"], kernel_w=c["k"], **extra))
        tr = sample_grid(dict(op=GPT_BLOCKS, batch=g["t_batch"], d_model=g["d_model"],
                              seq=g["seq"], dtype=dtypes, phase=PHASES), g["pool"], 12,
                         lambda c: c["batch"] * c["seq"] * c["d_model"] <= g["max_tokens_width"])
        held = held_out_llama_dims(device)
        llama = sample_grid(dict(op=LLAMA_BLOCKS, batch=g["t_batch"], d_model=g["d_model"],
                                 seq=g["seq"], dtype=dtypes, phase=PHASES), g["pool"] // 3, 13,
                            lambda c: c["batch"] * c["seq"] * c["d_model"] <= g["max_tokens_width"]
                            and (c["d_model"], c["seq"], c["batch"]) not in held)
        for c in tr + llama:
            points.append(Point.make(self.name, c["op"], c["phase"], c["dtype"],
                                     **transformer_point_args(c["op"], c["batch"], c["d_model"],
                                                              c["seq"])))
        return points

    def points(self, device) -> list[Point]:
        """Grid points in spread order, alternating with the validation models' blocks."""
        grid = super().points(device)
        models, self._ranked = _candidate_blocks(device)
        self._models = {p.id for p in models}
        out, seen = [], set()
        for i in range(max(len(grid), len(models))):
            for source in (models, grid):
                if i < len(source) and source[i].id not in seen:
                    seen.add(source[i].id)
                    out.append(source[i])
        return out

    def features(self, point: Point) -> list[float]:
        p = point.p
        size = p.get("c_out", p.get("d_model"))
        extent = p.get("h", p.get("seq_q"))
        return [log2(p["batch"]), log2(size), log2(extent), log2(p.get("stride", 1))] + one_hot(
            point.op, BLOCKS, 3.0) + one_hot(point.dtype, ALL_DTYPES) + one_hot(point.phase, PHASES)

    def build(self, point: Point, device) -> Workload:
        import torch

        p, dt, dev = point.p, point.dtype, device.torch_device
        with torch.device(dev):  # parameters initialised where they run, not on the CPU
            module = build_block(point.op, p)
        module = module.to(device=dev, dtype=torch_dtype(dt))
        if point.op in TRANSFORMER_BLOCKS:
            shape = (p["batch"], p["seq_q"], p["d_model"])
        else:
            shape = (p["batch"], p["c_in"], p["h"], p["w"])
        x = randn(shape, dt, dev, requires_grad=True)
        params = [q for q in module.parameters() if q.requires_grad]
        not_acts = list(module.parameters()) + list(module.buffers())
        n_params = sum(q.numel() for q in module.parameters())
        flops, nbytes = model_cost(module, (x.detach(),), dt, backward=point.phase == "fwd_bwd")

        def forward():  # training-mode forward: what backward will need
            module.train()
            return module(x)

        if point.phase == "fwd":
            module.eval()

            @contextlib.contextmanager
            def context():
                with math_mode(dt), torch.no_grad():
                    yield

            def run():
                return module(x)

            def act_forward():
                out = forward()
                module.eval()
                return out

            return Workload(run, forward=act_forward, not_activations=not_acts, context=context,
                            flops=flops, bytes=nbytes, extra={"n_params": n_params})
        module.train()
        with torch.no_grad():
            grad = torch.randn_like(module(x))

        def fwd_bwd():
            return torch.autograd.grad(module(x), [x] + params, grad)

        return Workload(fwd_bwd, forward=forward, not_activations=not_acts,
                        context=lambda: math_mode(dt), flops=flops, bytes=nbytes,
                        extra={"n_params": n_params})
