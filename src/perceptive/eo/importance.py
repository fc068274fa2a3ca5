"""Which features carry the map: importance per band or index and per date.

LightGBM's total gain when the estimator is LightGBM; the estimator's own
``feature_importances_`` (impurity decrease) for other tree ensembles; otherwise permutation
importance (scikit-learn) on the spatially held-out validation pixels, for any estimator.
Feature columns are ``f"{feature}_{YYYY-MM-DD}"`` (:func:`perceptive.eo.sampling.feature_columns`),
so the importances fold into a (feature, date) table: the eo-learn LULC example's heatmap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

#: Validation pixels used at most for permutation importance (it predicts n_repeats x columns
#: times), drawn with a fixed seed.
MAX_PERMUTATION_ROWS = 3000


def feature_importance(model, validation: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """A table with one row per feature column: ``feature`` (band or index), ``date``,
        ``importance`` (normalised to sum 1) and ``method`` ("lightgbm gain", "impurity decrease"
    or "permutation").
        ``validation`` holds the held-out rows (features and ``label``), used by permutation."""
    names = model.feature_names
    booster = getattr(model.estimator, "booster_", None)
    if booster is not None:
        values = booster.feature_importance(importance_type="gain").astype(np.float64)
        method = "lightgbm gain"
    elif hasattr(model.estimator, "feature_importances_"):  # e.g. random forest: impurity
        values = np.asarray(model.estimator.feature_importances_, dtype=np.float64)
        method = "impurity decrease"
    else:
        rows = validation.sample(min(len(validation), MAX_PERMUTATION_ROWS), random_state=seed)
        result = permutation_importance(
            model.estimator, rows[names].astype(np.float32), rows["label"].to_numpy(),
            n_repeats=3, random_state=seed, n_jobs=1,
        )  # fmt: skip
        values = np.clip(result.importances_mean, 0, None)  # below 0: noise, no importance
        method = "permutation"
    total = values.sum()
    feature, date = zip(*(name.rsplit("_", 1) for name in names), strict=True)
    return pd.DataFrame(
        {
            "column": names,
            "feature": feature,
            "date": date,
            "importance": values / total if total > 0 else values,
            "method": method,
        }
    )
