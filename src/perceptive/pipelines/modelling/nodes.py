"""Nodes of the modelling pipeline: read parameters, call perceptive.eo."""

from __future__ import annotations

import logging

import pandas as pd
from matplotlib.figure import Figure

from perceptive.eo.accuracy import classification_report
from perceptive.eo.classifier import LulcModel, train_model
from perceptive.eo.plots import plot_confusion_matrix

log = logging.getLogger(__name__)


def train(samples: pd.DataFrame, classifier: dict) -> LulcModel:
    """Fit the configured classifier on the training split."""
    model = train_model(samples, classifier)
    log.info(
        "Trained %s on %d pixels, %d features, classes %s",
        classifier["method"], int((samples["split"] == "train").sum()),
        len(model.feature_names), model.class_ids.tolist(),
    )  # fmt: skip
    return model


def evaluate(model: LulcModel, samples: pd.DataFrame) -> tuple[dict, Figure]:
    """Accuracy on the spatially held-out validation pixels, and its confusion matrix plot;
    the report names the estimator and its settings."""
    validation = samples[samples["split"] == "validation"]
    predicted = model.predict(validation[model.feature_names].to_numpy("float32"))
    report = classification_report(validation["label"].to_numpy(), predicted, legend=model.legend)
    report["model"] = model.info  # which estimator, with which settings, scored this
    log.info(
        "Validation: overall accuracy %.3f, kappa %.3f, majority-class share %.3f (%d pixels)",
        report["overall_accuracy"], report["kappa"], report["majority_class_share"],
        report["n_samples"],
    )  # fmt: skip
    return report, plot_confusion_matrix(report)
