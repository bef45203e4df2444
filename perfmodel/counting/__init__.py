"""Count any torch model on the meta device: params, MACs, FLOPs, acts, bytes, op list."""
from perfmodel.counting.counter import ModelCount, count_model
from perfmodel.counting.records import OpList, OpRecord

__all__ = ["ModelCount", "OpList", "OpRecord", "count_model"]
