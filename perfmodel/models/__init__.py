"""Model families built from parameters, their analytic complexity, and scaling.

- `anynet.py`, `regnet.py`, `effnet.py`: pycls CNNs (RegNetX/Y, ResNet/ResNeXt,
  EfficientNet) with a static `complexity(cx, ...)` per block; named configs in
  `cnn_configs.py`.
- `vit.py`: Vision Transformer; `transformer.py`: GPT/Llama decoder-only transformer from
  `transformer_config.TransformerConfig` (named configs in `transformer_configs.py`).
- `scaling.py`: "Fast and Accurate Model Scaling" strategies; `registry.py`: names,
  `build_model`, `list_models`; `report.py`: the cost summary behind the CLI.
"""
