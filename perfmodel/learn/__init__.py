"""Learned predictors of op runtime, power and energy, fitted on profiles.

- `schema`: read profile directories, .parquet and plain CSVs (`read_measurements`).
- `kinds`: op kinds that share a model (gemm, conv, attention, elementwise, others).
- `features`: GPU-grounded features (roofline, tiles, waves, alignment), vectorised.
- `predictor`: `fit`, `Predictor.predict / save`, `load` (xgboost JSON + JSON metadata).
- `conformal`: split-conformal intervals; `baselines`: roofline, linear, random forest;
  `metrics` and `evaluate`: grouped cross-validation of all of them side by side.

xgboost and scikit-learn are imported inside the functions that need them.
"""
