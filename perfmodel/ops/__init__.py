"""Op cost formulas: FLOPs, bytes and activations per op kind, and roofline times.

    from perfmodel.ops import op_cost, gemm_cost
    op_cost("conv2d", batch=8, c_in=64, h=56, w=56, c_out=64, kernel_h=3, kernel_w=3,
            padding=1, dtype="bfloat16", phase="fwd_bwd")

Every kind is registered with `perfmodel.ops.registry.register`; `list_op_kinds()`
lists them.
"""
from perfmodel.ops import attention, conv, matmul, memory, norm, pointwise, pool, reduce  # noqa: F401  (registers the formulas)
from perfmodel.ops.cost import OpCost
from perfmodel.ops.matmul import gemm_cost
from perfmodel.ops.registry import (PHASES, OpFormula, get_formula, is_tensor_op, list_op_kinds,
                                    op_cost, register)
from perfmodel.ops.roofline import LAUNCH_OVERHEAD_S, RooflineEstimate, op_roofline, roofline

__all__ = [
    "OpCost", "OpFormula", "PHASES", "LAUNCH_OVERHEAD_S", "RooflineEstimate",
    "gemm_cost", "get_formula", "is_tensor_op", "list_op_kinds", "op_cost", "op_roofline",
    "register", "roofline",
]
