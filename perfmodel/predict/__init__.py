"""Model-level prediction: whole-model time, energy and memory, ranking of scaled variants,
predicted MFU, and validation against measured whole models.

    from perfmodel.predict import predict_model, rank_candidates, resolve_backend
    p = predict_model("RegNetX-400MF", batch=8, factor=4, strategy="dw", device="cpu")
    r = rank_candidates("gpt2", 4, ["d", "w", "s", "dws"], batch=8, device="h100")

Data flow (one module per step):
- `parts.py`: a model as parts (stem, blocks, head, loss) so each distinct part is
  counted once; `counts.py` counts a part on the meta device (ops + saved-for-backward
  bytes in one pass) and `analytic.py` writes the same op rows in closed form for the
  target families' parts (what makes ranking 100 candidates take well under a second).
- `device.py`: what `--device` means (profile dir, saved predictor, device name -> shipped
  profile, else catalogue + roofline) and the `Backend` that prices parts, with caches.
- `optimes.py`: per-op time/energy (learned predictor or roofline), cached per op shape.
- `calibration.py`: the sum of ops calibrated on the profile's `blocks` suite only, with
  split-conformal intervals; `optimizer.py`: the optimizer step as pointwise kernels;
  `memory.py`: weights, gradients, optimizer states, activations, workspace.
- `model.py`: `predict_model` -> `ModelPrediction`; `rank.py`: candidates, Pareto front,
  plot; `llm.py`: data-parallel transformer step time, the predicted mode of `mfu`;
  `assembly.py`: the whole-model scale (a model vs the sum of its isolated parts, per op
  mix, with its blocks measured or as a sum of ops), fitted on the `validation` suite's
  unscaled and x2 models;
  `validate.py`: predictions against the `validation` suite, each row scored with the
  scale fitted on the other fold (never on itself);
  `targets.py`: the issue-5 accuracy targets.
"""
from perfmodel.predict.device import Backend, resolve_backend
from perfmodel.predict.model import Estimate, ModelPrediction, predict_model
from perfmodel.predict.rank import Ranking, rank_candidates

__all__ = ["Backend", "Estimate", "ModelPrediction", "Ranking", "predict_model",
           "rank_candidates", "resolve_backend"]
