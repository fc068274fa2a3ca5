"""Nodes of the modelling pipeline: read parameters, call perceptive.eo."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from perceptive.eo.accuracy import classification_report
from perceptive.eo.classifier import LulcModel, supports_early_stopping, train_model
from perceptive.eo.importance import feature_importance
from perceptive.eo.plots import plot_confusion_matrix, plot_feature_importance
from perceptive.eo.sampling import TEST, TRAIN, VALIDATION
from perceptive.params import EarlyStopping, Evaluation

log = logging.getLogger(__name__)

#: The headline of a secondary assessment (all pixels, edges only, test, truth).
HEADLINE = ("n_samples", "n_groups", "overall_accuracy", "kappa", "macro_f1", "weighted_f1")


def train(samples: pd.DataFrame, classifier: dict, early_stopping: EarlyStopping) -> LulcModel:
    """Fit the configured classifier on the training split (LightGBM's rounds chosen on
    held-out training blocks when early stopping is enabled)."""
    model = train_model(samples, classifier, _stopping(early_stopping, classifier))
    log.info(
        "Trained %s on %d pixels, %d features, classes %s",
        classifier["method"], int((samples["split"] == TRAIN).sum()),
        len(model.feature_names), model.class_ids.tolist(),
    )  # fmt: skip
    return model


def _stopping(early_stopping: EarlyStopping, classifier: dict):
    """Early stopping's settings for this classifier: none for one that has no rounds to stop
    (an arm's random forest, say; the main classifier is checked with the parameters)."""
    if early_stopping.enabled and not supports_early_stopping(classifier["method"]):
        log.info("Early stopping does not apply to %s; it trains as configured.",
                 classifier["method"])  # fmt: skip
        return None
    return early_stopping.settings()


def _headline(report: dict) -> dict:
    keys = [k for key in HEADLINE for k in (key, f"{key}_ci95") if k in report]
    return {key: report[key] for key in keys}


def _edges(rows: pd.DataFrame) -> pd.Series:
    return rows["edge"] if "edge" in rows else pd.Series(False, index=rows.index)


def evaluate(
    model: LulcModel,
    samples: pd.DataFrame,
    classifier: dict,
    evaluation: Evaluation,
    early_stopping: EarlyStopping,
) -> tuple[dict, Figure]:
    """Accuracy on the spatially held-out validation pixels with 95 % intervals from a
    bootstrap over spatial blocks, and its confusion matrix plot.

    The headline is on the eroded validation pixels (no class edge, like the training data);
    ``all_pixels`` and ``edges_only`` report the validation blocks with their edges, where the
    map is used too; ``test`` the test blocks, if any; ``demo_truth`` the same pixels against
    the demo's true classes (demo source only); ``cross_validation`` the spatial folds.
    Classes the model maps but validation lacks are listed (``classes_without_reference``)
    and logged. The report names the estimator and its settings (``model``), with the rounds
    early stopping chose (``model.early_stopping.best_iteration``) when it is enabled."""
    held = samples[samples["split"].isin([VALIDATION, TEST])]
    predicted = pd.Series(
        model.predict(held[model.feature_names].to_numpy("float32")), index=held.index
    )

    def assess(rows: pd.DataFrame, truth: str = "label") -> dict:
        return classification_report(
            rows[truth].to_numpy(), predicted[rows.index].to_numpy(), legend=model.legend,
            groups=rows["block"].to_numpy(), classes=model.class_ids.tolist(),
            n_bootstrap=evaluation.n_bootstrap,
        )  # fmt: skip

    validation = held[held["split"] == VALIDATION]
    edge = _edges(validation)
    report = assess(validation[~edge])
    report["assessed_pixels"] = "validation blocks, class edges eroded as for training"
    report["all_pixels"] = _headline(assess(validation))
    if edge.any():
        report["edges_only"] = _headline(assess(validation[edge]))
    test = held[held["split"] == TEST]
    if not test.empty:
        report["test"] = _headline(assess(test[~_edges(test)]))
    if "true_label" in validation:
        report["demo_truth"] = {
            "note": "demo only: all validation pixels against the reference labels (what a "
            "user measures) and against the scene's true classes (label noise removed)",
            "against_reference_labels": report["all_pixels"],
            "against_truth": _headline(assess(validation, truth="true_label")),
        }
    if evaluation.cross_validation:
        report["cross_validation"] = cross_validate(samples, classifier, model, early_stopping)
    report["model"] = model.info  # which estimator, with which settings, scored this
    log.info(
        "Validation: overall accuracy %.3f [%s], kappa %.3f, majority-class share %.3f "
        "(%d pixels, %d blocks); all pixels incl. edges %.3f",
        report["overall_accuracy"], _range(report.get("overall_accuracy_ci95")),
        report["kappa"] or float("nan"), report["majority_class_share"], report["n_samples"],
        report.get("n_groups", 0), report["all_pixels"]["overall_accuracy"],
    )  # fmt: skip
    if report["classes_without_reference"]:
        log.warning(
            "Class(es) %s can be mapped but have no validation pixel: their accuracy is "
            "unknown; add reference data for them or change the block split (seed, size).",
            report["classes_without_reference"],
        )
    for warning in report["warnings"]:
        log.warning("Validation: %s", warning)
    return report, plot_confusion_matrix(report)


def _range(interval) -> str:
    return "n/a" if not interval else f"{interval[0]:.3f}-{interval[1]:.3f}"


def cross_validate(
    samples: pd.DataFrame, classifier: dict, model: LulcModel, early_stopping: EarlyStopping
) -> dict:
    """Spatial k-fold: for each ``fold`` of the non-test blocks, train on the other folds
    (eroded pixels, early stopping as for the model) and assess on it; per-fold scores, their
    mean and standard deviation."""
    pool = samples[(samples["fold"] >= 0) & ~_edges(samples)]
    scores = []
    for fold in sorted(pool["fold"].unique()):
        table = pool.assign(split=np.where(pool["fold"] == fold, VALIDATION, TRAIN))
        table.attrs = samples.attrs
        held = table[table["split"] == VALIDATION]
        fitted = train_model(table, classifier, _stopping(early_stopping, classifier))
        predicted = fitted.predict(held[model.feature_names].to_numpy("float32"))
        report = classification_report(held["label"].to_numpy(), predicted, legend=model.legend)
        scores.append({"fold": int(fold), **_headline(report)})
    out: dict = {"folds": scores}
    for key in ("overall_accuracy", "kappa", "macro_f1"):
        values = np.array([s[key] for s in scores if s[key] is not None], dtype=np.float64)
        out[f"{key}_mean"] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1)) if values.size > 1 else None
    log.info(
        "Spatial %d-fold cross-validation: overall accuracy %.3f +- %.3f",
        len(scores), out["overall_accuracy_mean"], out["overall_accuracy_std"] or 0.0,
    )  # fmt: skip
    return out


def explain(model: LulcModel, samples: pd.DataFrame) -> tuple[pd.DataFrame, Figure]:
    """Importance per band or index and date (LightGBM gain, else permutation importance on
    the validation pixels), as a table and a heatmap."""
    validation = samples[(samples["split"] == VALIDATION) & ~_edges(samples)]
    table = feature_importance(model, validation)
    per_feature = table.groupby("feature", sort=False)["importance"].sum()
    log.info("Importance per feature (%s): %s", table["method"].iloc[0],
             per_feature.round(3).to_dict())  # fmt: skip
    return table, plot_feature_importance(table)
