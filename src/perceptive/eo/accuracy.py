"""Accuracy of a land-cover classification, as one JSON-serialisable report.

One function so that every run (and every arm of a comparison) reports the same metrics with
the same definitions: overall accuracy, Cohen's kappa, F1 scores, per-class precision/recall,
the confusion matrix and the majority-class baseline a useful model must beat.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from sklearn import metrics

from perceptive.eo.legend import DEFAULT_LEGEND, LandCoverClass


def _number(value: float) -> float | None:
    """A JSON-safe float: NaN/inf (e.g. kappa of a single-class case) become None."""
    value = float(value)
    return value if math.isfinite(value) else None


def block_bootstrap_ci(
    correct: np.ndarray,
    groups: np.ndarray,
    n_bootstrap: int = 500,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Confidence interval of overall accuracy by resampling whole spatial blocks.

    Pixels of one block are correlated, so resampling blocks (not pixels) gives an honest
    interval for a block-split validation set.
    """
    codes, inverse = np.unique(groups, return_inverse=True)
    n_correct = np.bincount(inverse, weights=correct.astype(np.float64), minlength=len(codes))
    n_total = np.bincount(inverse, minlength=len(codes)).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(codes), size=(n_bootstrap, len(codes)))
    accuracy = n_correct[draws].sum(axis=1) / n_total[draws].sum(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(accuracy, [alpha, 1 - alpha])
    return float(low), float(high)


def classification_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    legend: Iterable[LandCoverClass] = DEFAULT_LEGEND,
    groups: np.ndarray | None = None,
) -> dict:
    """Accuracy metrics of predicted vs reference class ids, as a JSON-serialisable dict.

    Keys: ``overall_accuracy``, ``kappa`` (Cohen), ``macro_f1``, ``weighted_f1``,
    ``per_class`` {name: {id, precision, recall, f1, support}}, ``confusion_matrix``
    {labels, names, matrix (rows = reference, columns = prediction)}, ``n_samples``,
    ``majority_class_share`` (share of the most frequent reference class: the accuracy of
    always predicting it). Classes are the union of ids in ``y_true`` and ``y_pred``.
    With ``groups`` (e.g. the spatial block of each sample), adds
    ``overall_accuracy_ci95`` from a block bootstrap.
    """
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    y_pred = np.asarray(y_pred).astype(np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length ({y_true.size} vs {y_pred.size}).")
    if y_true.size == 0:
        raise ValueError("No samples to assess: y_true is empty (is the validation split empty?).")
    names = {c.id: c.name for c in legend}
    labels = np.union1d(y_true, y_pred)
    label_names = [names.get(int(i), f"class {int(i)}") for i in labels]

    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    if labels.size == 1:  # one class everywhere: kappa undefined (sklearn would warn)
        matrix, kappa = np.array([[y_true.size]]), float("nan")
    else:
        matrix = metrics.confusion_matrix(y_true, y_pred, labels=labels)
        kappa = metrics.cohen_kappa_score(y_true, y_pred, labels=labels)
    _, true_counts = np.unique(y_true, return_counts=True)
    report = {
        "n_samples": int(y_true.size),
        "overall_accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "kappa": _number(kappa),
        "macro_f1": float(
            metrics.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "weighted_f1": float(
            metrics.f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)
        ),
        "majority_class_share": float(true_counts.max() / y_true.size),
        "per_class": {
            name: {
                "id": int(i),
                "precision": float(p),
                "recall": float(r),
                "f1": float(f),
                "support": int(s),
            }
            for name, i, p, r, f, s in zip(
                label_names, labels, precision, recall, f1, support, strict=True
            )
        },
        "confusion_matrix": {
            "labels": [int(i) for i in labels],
            "names": label_names,
            "matrix": matrix.astype(int).tolist(),
        },
    }
    if groups is not None:
        groups = np.asarray(groups).ravel()
        if groups.shape != y_true.shape:
            raise ValueError(f"groups has {groups.size} values for {y_true.size} samples.")
        report["overall_accuracy_ci95"] = list(block_bootstrap_ci(y_true == y_pred, groups))
        report["n_groups"] = int(np.unique(groups).size)
    return report
