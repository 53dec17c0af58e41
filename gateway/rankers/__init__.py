"""Rankers: the two model arms (LightGBM control, CatBoost test) and the baselines."""
