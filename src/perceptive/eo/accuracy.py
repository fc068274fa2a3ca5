"""Accuracy of a land-cover classification, as one JSON-serialisable report.

One function so that every run (and every arm of a comparison) reports the same metrics with
the same definitions: overall accuracy, Cohen's kappa, F1 scores, per-class precision/recall,
the confusion matrix and the majority-class baseline a useful model must beat, each with a
95 % interval from a bootstrap over spatial blocks. :func:`area_estimates` gives the
area-adjusted accuracy and the class areas with their uncertainty (Olofsson et al. 2014) from
a sample confusion matrix and the mapped area of each class.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

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


def mcnemar(first_correct: np.ndarray, second_correct: np.ndarray) -> dict:
    """Paired test of two classifiers on the same pixels: do they differ in accuracy?

    Only the discordant pixels count (one right, the other wrong); under the null hypothesis
    each is equally likely to favour either classifier, so the p-value is the exact two-sided
    binomial test of their split (McNemar's exact test; no large-sample approximation).
    Neighbouring pixels are not independent, so read a small p-value from a few blocks as
    weaker evidence than it looks."""
    first = np.asarray(first_correct, dtype=bool)
    second = np.asarray(second_correct, dtype=bool)
    only_first = int(np.count_nonzero(first & ~second))
    only_second = int(np.count_nonzero(~first & second))
    discordant = only_first + only_second
    p_value = stats.binomtest(only_first, discordant, 0.5).pvalue if discordant else 1.0
    return {
        "n_pixels": int(first.size),
        "only_first_correct": only_first,
        "only_second_correct": only_second,
        "p_value": float(p_value),
    }


#: Fewer spatial blocks than this give a bootstrap interval that means little (one block gives
#: a zero-width interval); reports then carry a warning.
MIN_BLOCKS = 5


def confusion_metrics(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy metrics of one confusion matrix (rows = reference, columns = prediction), or
    of a stack of them (``(..., k, k)``, e.g. one per bootstrap draw), vectorised.

    The definitions are scikit-learn's (``accuracy_score``, ``cohen_kappa_score``,
    ``precision_recall_fscore_support`` with ``zero_division=0``, ``f1_score`` macro and
    weighted); kappa is NaN when chance agreement is 1 (a single class).
    """
    m = np.asarray(matrix, dtype=np.float64)
    n = m.sum(axis=(-2, -1))
    diag = np.diagonal(m, axis1=-2, axis2=-1)
    support = m.sum(axis=-1)  # reference totals
    predicted = m.sum(axis=-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        oa = diag.sum(axis=-1) / n
        chance = (support * predicted).sum(axis=-1) / (n * n)
        kappa = np.where(chance < 1, (oa - chance) / (1 - chance), np.nan)
        precision = np.where(predicted > 0, diag / predicted, 0.0)
        recall = np.where(support > 0, diag / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        row_normalised = np.where(support[..., None] > 0, m / support[..., None], 0.0)
    return {
        "overall_accuracy": oa,
        "kappa": kappa,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "macro_f1": f1.mean(axis=-1),
        "weighted_f1": (f1 * support).sum(axis=-1) / n,
        "row_normalised": row_normalised,
    }


def _confusion(y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    index = {int(label): i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(matrix, ([index[int(v)] for v in y_true], [index[int(v)] for v in y_pred]), 1)
    return matrix


def block_bootstrap_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: np.ndarray,
    labels: np.ndarray,
    n_bootstrap: int = 500,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``level`` intervals (percentile bootstrap) of every :func:`confusion_metrics` value,
    resampling whole spatial blocks (``groups``) with replacement: pixels of one block are
    correlated, so a pixel bootstrap would give intervals far too narrow.

    One confusion matrix is counted per block, and each draw sums the drawn blocks' matrices,
    so the cost does not grow with the number of pixels. Returns {metric: (low, high)}.
    """
    codes, block_of = np.unique(np.asarray(groups), return_inverse=True)
    index = np.searchsorted(labels, y_true), np.searchsorted(labels, y_pred)
    per_block = np.zeros((len(codes), len(labels), len(labels)), dtype=np.int64)
    np.add.at(per_block, (block_of, *index), 1)
    draws = np.random.default_rng(seed).integers(0, len(codes), size=(n_bootstrap, len(codes)))
    stacked = np.zeros((n_bootstrap, len(labels), len(labels)), dtype=np.int64)
    for b in range(n_bootstrap):  # summing per draw keeps memory at one (k, k) per draw
        stacked[b] = per_block[draws[b]].sum(axis=0)
    values = confusion_metrics(stacked)
    values["matrix"] = stacked.astype(np.float64)
    alpha = (1 - level) / 2
    with warnings.catch_warnings():  # all-NaN columns (e.g. kappa of one class) stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            key: tuple(np.nanquantile(value, [alpha, 1 - alpha], axis=0))
            for key, value in values.items()
        }


def _interval(low, high) -> list:
    return [_json(low), _json(high)]


def _json(value):
    if np.ndim(value) == 0:
        return _number(value)
    return [_json(v) for v in value]


def classification_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    legend: Iterable[LandCoverClass] = DEFAULT_LEGEND,
    groups: np.ndarray | None = None,
    classes: Iterable[int] = (),
    n_bootstrap: int = 500,
    seed: int = 0,
) -> dict:
    """Accuracy metrics of predicted vs reference class ids, as a JSON-serialisable dict.

    Keys: ``overall_accuracy``, ``kappa`` (Cohen), ``macro_f1``, ``weighted_f1``,
    ``per_class`` {name: {id, precision, recall, f1, support}}, ``confusion_matrix``
    {labels, names, matrix (counts, rows = reference, columns = prediction), row_normalised},
    ``n_samples``, ``majority_class_share`` (share of the most frequent reference class: the
    accuracy of always predicting it). Classes are the union of ids in ``y_true``, ``y_pred``
    and ``classes`` (e.g. every class the model can map); those with no reference sample are
    listed in ``classes_without_reference`` (their recall is undefined, reported as 0).

    With ``groups`` (the spatial block of each sample), every metric gets a ``<key>_ci95``
    [low, high] from a bootstrap over blocks (:func:`block_bootstrap_metrics`), plus
    ``n_groups``; fewer than :data:`MIN_BLOCKS` blocks add a line to ``warnings``.
    """
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    y_pred = np.asarray(y_pred).astype(np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length ({y_true.size} vs {y_pred.size}).")
    if y_true.size == 0:
        raise ValueError("No samples to assess: y_true is empty (is the validation split empty?).")
    names = {c.id: c.name for c in legend}
    labels = np.union1d(np.union1d(y_true, y_pred), np.asarray(list(classes), dtype=np.int64))
    label_names = [names.get(int(i), f"class {int(i)}") for i in labels]
    matrix = _confusion(y_true, y_pred, labels)
    point = confusion_metrics(matrix)
    support = matrix.sum(axis=1)
    report = {
        "n_samples": int(y_true.size),
        "overall_accuracy": _number(point["overall_accuracy"]),
        "kappa": _number(point["kappa"]),
        "macro_f1": _number(point["macro_f1"]),
        "weighted_f1": _number(point["weighted_f1"]),
        "majority_class_share": float(support.max() / y_true.size),
        "per_class": {
            name: {
                "id": int(i),
                "precision": float(point["precision"][k]),
                "recall": float(point["recall"][k]),
                "f1": float(point["f1"][k]),
                "support": int(support[k]),
            }
            for k, (name, i) in enumerate(zip(label_names, labels, strict=True))
        },
        "confusion_matrix": {
            "labels": [int(i) for i in labels],
            "names": label_names,
            "matrix": matrix.astype(int).tolist(),
            "row_normalised": _json(point["row_normalised"]),
        },
        "classes_without_reference": [
            name for name, s in zip(label_names, support, strict=True) if s == 0
        ],
        "warnings": [],
    }
    if groups is None:
        return report
    groups = np.asarray(groups).ravel()
    if groups.shape != y_true.shape:
        raise ValueError(f"groups has {groups.size} values for {y_true.size} samples.")
    ci = block_bootstrap_metrics(y_true, y_pred, groups, labels, n_bootstrap, seed)
    for key in ("overall_accuracy", "kappa", "macro_f1", "weighted_f1"):
        report[f"{key}_ci95"] = _interval(*ci[key])
    for k, name in enumerate(label_names):
        for key in ("precision", "recall", "f1"):
            report["per_class"][name][f"{key}_ci95"] = _interval(ci[key][0][k], ci[key][1][k])
    report["confusion_matrix"]["matrix_ci95"] = _interval(*ci["matrix"])
    report["confusion_matrix"]["row_normalised_ci95"] = _interval(*ci["row_normalised"])
    report["n_groups"] = int(np.unique(groups).size)
    if report["n_groups"] < MIN_BLOCKS:
        report["warnings"].append(
            f"only {report['n_groups']} spatial block(s) hold the assessed pixels: the 95 % "
            f"intervals mean little below {MIN_BLOCKS} (one block gives a zero-width "
            "interval); lower the block size or raise the validation fraction."
        )
    return report


@dataclass(frozen=True)
class AreaEstimates:
    """Area-adjusted accuracy and area per class (Olofsson et al. 2014): ``table`` indexed
    by class, with the mapped area, the estimated area and its standard error and 95 %
    interval (same unit as the mapped area), user's and producer's accuracy with standard
    errors; ``overall_accuracy`` and its standard error."""

    table: pd.DataFrame
    overall_accuracy: float
    overall_accuracy_se: float


def area_estimates(
    confusion: np.ndarray,
    mapped_area: np.ndarray,
    classes: Iterable | None = None,
    level: float = 0.95,
) -> AreaEstimates:
    """Stratified estimators of area and accuracy, the strata being the map classes
    (Olofsson et al. 2014, Remote Sensing of Environment 148, 42-57, eqs. 2-10).

    ``confusion`` holds sample counts with **rows = map class, columns = reference class**
    (the transpose of scikit-learn's), the sample of each map class being a simple random
    sample of it; ``mapped_area`` is each map class's area (pixels, ha, ...) in the same
    order. Area proportions are ``p_ij = W_i n_ij / n_i.`` with ``W_i`` the mapped share;
    the estimated area of class j is ``A * sum_i p_ij``. Intervals are ``+- z SE`` (normal
    approximation). A map class with one sample has no variance estimate (NaN).
    """
    n = np.asarray(confusion, dtype=np.float64)
    area = np.asarray(mapped_area, dtype=np.float64)
    k = len(area)
    if n.shape != (k, k):
        raise ValueError(
            f"confusion must be ({k}, {k}) for {k} mapped areas (rows = map, columns = "
            f"reference), got {n.shape}."
        )
    n_i = n.sum(axis=1)
    unsampled = [i for i in range(k) if n_i[i] == 0 and area[i] > 0]
    if unsampled:
        names = [list(classes)[i] for i in unsampled] if classes is not None else unsampled
        raise ValueError(
            f"map class(es) {names} have mapped area but no sample: their area cannot be "
            "estimated; add reference samples in them (every stratum needs at least two)."
        )
    total = area.sum()
    w = area / total
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(n_i[:, None] > 0, n / n_i[:, None], 0.0)  # n_ij / n_i.
        p = w[:, None] * share
        spread = np.where(n_i[:, None] > 1, share * (1 - share) / (n_i[:, None] - 1), np.nan)
        spread = np.where(n_i[:, None] == 0, 0.0, spread)  # empty stratum of zero area
        proportion = p.sum(axis=0)
        proportion_se = np.sqrt((w[:, None] ** 2 * spread).sum(axis=0))
        users = np.diag(share)
        users_var = np.diag(spread)
        producers = np.diag(p) / proportion
        ref_total = (area[:, None] * share).sum(axis=0)  # an empty stratum adds 0, not NaN
        others = (area[:, None] ** 2 * spread).sum(axis=0) - area**2 * users_var
        producers_var = (
            area**2 * (1 - producers) ** 2 * users_var + producers**2 * others
        ) / ref_total**2
    z = float(stats.norm.ppf(0.5 + level / 2))
    estimated = total * proportion
    estimated_se = total * proportion_se
    table = pd.DataFrame(
        {
            "mapped_area": area,
            "area": estimated,
            "area_se": estimated_se,
            "area_ci_low": estimated - z * estimated_se,
            "area_ci_high": estimated + z * estimated_se,
            "users_accuracy": users,
            "users_accuracy_se": np.sqrt(users_var),
            "producers_accuracy": producers,
            "producers_accuracy_se": np.sqrt(producers_var),
        },
        index=pd.Index(list(classes) if classes is not None else range(k), name="class"),
    )
    overall = float(np.trace(p))
    overall_se = float(np.sqrt((w**2 * users_var).sum()))
    return AreaEstimates(table, overall, overall_se)
