"""The land-cover classifier: any scikit-learn classifier, chosen through the link contract.

The estimator is a parameter (``{method: lightgbm, n_estimators: 200, ...}``; ``method`` is a
name in :data:`METHODS` or any dotted class path) so that classifiers can be compared without
code changes. scikit-learn already defines what a fitted classifier knows, so the model takes
it from the estimator: the legend ids it predicts (``classes_``), the feature columns in their
order (``feature_names_in_``, set by fitting on a DataFrame) and its settings (``get_params``).

LightGBM can also choose its own number of rounds (:class:`EarlyStopping`): part of the
training blocks is held out as a stopping set, and the model is then refitted on every
training block with the rounds that set asked for.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier

from perceptive.eo.legend import NO_DATA, LandCoverClass, legend_from_config
from perceptive.eo.links import EstimatorRegistry, LinkError
from perceptive.eo.sampling import TRAIN, sample_feature_names

log = logging.getLogger(__name__)

#: Classifier link: a scikit-learn classifier class; options are its constructor parameters.
METHODS = EstimatorRegistry("classifier", "Estimator(**options).fit(X, y); predict_proba(X)")
METHODS.register("lightgbm", LGBMClassifier)
METHODS.register("random_forest", RandomForestClassifier)


def _lightgbm_parameters() -> set[str]:
    """Every parameter name and alias LightGBM's core knows (LGBMClassifier passes them on
    through **kwargs, so a misspelt one would otherwise be ignored)."""
    from lightgbm.basic import _ConfigAliases

    aliases = _ConfigAliases._get_all_param_aliases()
    return {name for names in aliases.values() for name in names} | set(aliases)


METHODS.accept_pass_through(LGBMClassifier, _lightgbm_parameters)


class ClassifierError(ValueError):
    """The training data cannot give a model, or a model cannot be applied."""


def build_estimator(spec: dict[str, Any]) -> Any:
    """An unfitted estimator from ``{method: name or dotted path, **options}``."""
    try:
        return METHODS.build(spec)
    except LinkError as err:
        raise ClassifierError(str(err)) from None


def supports_early_stopping(method: str) -> bool:
    """Whether the classifier ``method`` (a registered name or a dotted class path) can stop
    early on a held-out set: LightGBM can; scikit-learn's forests have no rounds to stop."""
    return issubclass(METHODS.get(method), LGBMClassifier)


@dataclass(frozen=True)
class EarlyStopping:
    """How LightGBM chooses its number of rounds: about ``holdout_fraction`` of the training
    blocks (whole spatial blocks, drawn with ``seed``) are held out as a stopping set; rounds
    are added until the estimator's metric on it (``multi_logloss`` unless its ``metric``
    option says otherwise) has not improved for ``stopping_rounds`` rounds (at most the
    classifier's ``n_estimators``); then the model is refitted on every training block with
    the best number of rounds. Validation and test blocks are never used."""

    holdout_fraction: float
    stopping_rounds: int
    seed: int


def stopping_blocks(train: pd.DataFrame, fraction: float, seed: int) -> list[int]:
    """About ``fraction`` (at least one) of the ``block`` values of the training rows
    ``train``, drawn in seeded random order; a block is skipped when holding it out would
    leave one of its classes without training pixels, so the model still learns every class."""
    classes_of_block = train.groupby("block")["label"].unique()
    blocks_left = train.groupby("label")["block"].nunique().to_dict()  # per class
    wanted = max(1, round(fraction * len(classes_of_block)))
    held: list[int] = []
    for block in np.random.default_rng(seed).permutation(classes_of_block.index.to_numpy()):
        if len(held) == wanted:
            break
        classes = classes_of_block[block]
        if all(blocks_left[c] > 1 for c in classes):
            held.append(int(block))
            for c in classes:
                blocks_left[c] -= 1
    if not held:
        raise ClassifierError(
            f"Early stopping cannot hold out any of the {len(classes_of_block)} training "
            "block(s): each holds the last training pixels of a class. Use smaller sampling "
            "blocks or more reference data, or disable early_stopping."
        )
    if len(held) < wanted:
        log.warning(
            "Early stopping holds out %d training block(s), not the %d asked: the others hold "
            "the last training pixels of a class.", len(held), wanted,
        )  # fmt: skip
    return sorted(held)


def best_rounds(
    estimator: Any, train: pd.DataFrame, names: list[str], stopping: EarlyStopping
) -> dict[str, Any]:
    """Fit a copy of the LightGBM ``estimator`` on the training rows outside the
    :func:`stopping_blocks` and stop when its metric on them stops improving; what was
    chosen."""
    if not isinstance(estimator, LGBMClassifier):
        raise ClassifierError(
            f"{type(estimator).__name__} cannot stop early (it has no boosting rounds); "
            "disable early_stopping or choose classifier method lightgbm."
        )
    held = stopping_blocks(train, stopping.holdout_fraction, stopping.seed)
    stop = train["block"].isin(held).to_numpy()
    fit, check = train[~stop], train[stop]
    trial = clone(estimator)
    with warnings.catch_warnings():
        # eval_set, deprecated in LightGBM 4.7, is the only way there that label-encodes the
        # stopping set: eval_y is scored unencoded (lightgbm-org/LightGBM#7400)
        warnings.filterwarnings("ignore", message=".*'eval_set' is deprecated")
        trial.fit(
            fit[names].astype(np.float32), fit["label"].to_numpy(),
            eval_set=[(check[names].astype(np.float32), check["label"].to_numpy())],
            callbacks=[lightgbm.early_stopping(stopping.stopping_rounds, verbose=False)],
        )  # fmt: skip
    best = int(trial.best_iteration_)  # 1-based; the best round even if none stopped it
    score = {metric: float(value) for metric, value in trial.best_score_["valid_0"].items()}
    log.info(
        "Early stopping: %d of at most %d rounds (on %d pixels of %d held-out training "
        "blocks, %s).", best, estimator.n_estimators, len(check), len(held), score,
    )  # fmt: skip
    return {
        "best_iteration": best,
        "max_rounds": int(estimator.n_estimators),
        "holdout_blocks": held,
        "n_holdout": int(len(check)),
        "holdout_score": score,  # the stopping metric at best_iteration
        **{k: getattr(stopping, k) for k in ("holdout_fraction", "stopping_rounds", "seed")},
        "refit": "on every training block with best_iteration rounds",
    }


@dataclass
class LulcModel:
    """A fitted scikit-learn classifier, the legend of its classes, and where it came from.

    Feature columns and legend ids are the estimator's own ``feature_names_in_`` and
    ``classes_``; inputs are handed over as named columns, so scikit-learn itself refuses
    columns in another order.
    """

    estimator: Any
    legend: tuple[LandCoverClass, ...]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return [str(name) for name in self.estimator.feature_names_in_]

    @property
    def class_ids(self) -> np.ndarray:
        """Legend ids, in the order of ``predict_proba``'s columns."""
        return np.asarray(self.estimator.classes_).astype(np.uint8)

    def _frame(self, X: np.ndarray) -> pd.DataFrame:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise ClassifierError(
                f"Model expects (n, {len(self.feature_names)}) features, got {X.shape}."
            )
        return pd.DataFrame(X, columns=self.feature_names, copy=False)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, k) float32 class probabilities; column ``k`` is legend id ``class_ids[k]``."""
        X = self._frame(X)
        if len(X) == 0:
            return np.zeros((0, len(self.class_ids)), dtype=np.float32)
        return np.asarray(self.estimator.predict_proba(X), dtype=np.float32)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """(n,) uint8 legend class ids."""
        X = self._frame(X)
        if len(X) == 0:
            return np.zeros(0, dtype=np.uint8)
        return np.asarray(self.estimator.predict(X)).astype(np.uint8)


def train_model(
    samples: pd.DataFrame, spec: dict[str, Any], early_stopping: EarlyStopping | None = None
) -> LulcModel:
    """Fit the classifier of ``spec`` on the ``split == "train"`` rows of a samples table.

    Feature columns are every non-metadata column, in table order (which is
    :func:`perceptive.eo.sampling.feature_columns` order); labels are ids of the legend the
    samples carry (``samples.attrs["legend"]``; the default legend when absent). With
    ``early_stopping`` (LightGBM only) the number of rounds is first chosen on held-out
    training blocks (:func:`best_rounds`, recorded in ``info["early_stopping"]``).
    """
    if "label" not in samples.columns or "split" not in samples.columns:
        raise ClassifierError(
            f"Samples need 'label' and 'split' columns (from sample_pixels); got "
            f"{list(samples.columns)[:10]}…"
        )
    names = sample_feature_names(samples)
    if not names:
        raise ClassifierError("The samples table has no feature columns.")
    train = samples[samples["split"] == TRAIN]
    if train.empty:
        raise ClassifierError("No training samples (split == 'train') in the samples table.")
    y = train["label"].to_numpy()
    if np.any(y == NO_DATA):
        raise ClassifierError(
            f"Training samples contain class {NO_DATA} (no data), which is never a training "
            "label; drop those rows."
        )
    if len(np.unique(y)) < 2:
        raise ClassifierError(
            f"Training samples hold a single class {np.unique(y).tolist()}; a classifier needs "
            "at least two (more reference labels or a different block split)."
        )
    X = train[names].astype(np.float32)
    estimator = build_estimator(spec)
    start = time.perf_counter()
    stopped = None
    if early_stopping is not None:
        stopped = best_rounds(estimator, train, names, early_stopping)
        estimator.set_params(n_estimators=stopped["best_iteration"])
    estimator.fit(X, y)
    seconds = time.perf_counter() - start
    log.info(
        "Trained %s on %d samples x %d features, %d classes in %.1f s.",
        type(estimator).__name__, X.shape[0], X.shape[1], len(estimator.classes_), seconds,
    )  # fmt: skip
    info = {
        "estimator": f"{type(estimator).__module__}.{type(estimator).__name__}",
        "params": _json_safe(estimator.get_params(deep=False)),
        "n_train": int(X.shape[0]),
        "n_features": int(X.shape[1]),
        "fit_seconds": round(seconds, 3),
    }
    if stopped is not None:
        info["early_stopping"] = stopped
    legend = legend_from_config(samples.attrs.get("legend"))
    return LulcModel(estimator=estimator, legend=legend, info=info)


def _json_safe(params: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value if value is None or isinstance(value, bool | int | float | str) else repr(value)
        for key, value in params.items()
    }
