"""Model-level prediction: whole-model time, energy and memory, ranking of scaled variants,
predicted MFU, and validation against measured whole models.

    from perfmodel.predict import predict_model, rank_candidates, resolve_backend
"""
from perfmodel.predict.device import Backend, resolve_backend
from perfmodel.predict.model import Estimate, ModelPrediction, predict_model

__all__ = ["Backend", "Estimate", "ModelPrediction", "predict_model", "resolve_backend"]
