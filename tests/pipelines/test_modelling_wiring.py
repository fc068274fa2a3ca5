"""The modelling pipeline's early stopping, run with SequentialRunner on an in-memory catalog
with parameters from the project's loader, as in ``test_wiring.py``: enabling it changes the
model's number of trees, and only training blocks decide it."""

from __future__ import annotations

import numpy as np
import pytest

from perceptive.pipelines.modelling.pipeline import create_pipeline as modelling
from perceptive.pipelines.sampling.pipeline import create_pipeline as sampling
from tests.pipelines.test_wiring import project, run, upstream  # noqa: F401

STOPPING = {"enabled": True, "holdout_fraction": 0.2, "stopping_rounds": 10}
ROUNDS = {"n_estimators": 200}  # conf/base's rounds, not TINY's 10


@pytest.fixture(scope="module")
def samples(upstream):  # noqa: F811
    """Samples of the tiny AOI with train, validation and test blocks."""
    inputs = {key: upstream[key] for key in ("features_cube", "label_raster", "reference_labels")}
    pipeline = sampling().only_nodes("sample_training_pixels")
    table = run(pipeline, inputs, sampling={"test_fraction": 0.2})["samples"]
    assert set(table["split"]) == {"train", "validation", "test"}
    return table


def _model_and_metrics(samples, **overrides):
    """The ``train`` node's model (intermediate in the pipeline), and ``evaluate``'s report."""
    overrides = {"classifier": ROUNDS, "evaluation": {"n_bootstrap": 60}, **overrides}
    model = run(modelling().only_nodes("train"), {"samples": samples}, **overrides)["model"]
    inputs = {"samples": samples, "model": model}
    report = run(modelling().only_nodes("evaluate"), inputs, **overrides)["validation_metrics"]
    return model, report


def test_early_stopping_changes_the_number_of_trees_and_is_recorded(samples):
    plain, plain_metrics = _model_and_metrics(samples)
    n_classes = len(plain.class_ids)
    # LightGBM ends before 200 rounds once no split gains anything on the training pixels
    plain_rounds = plain.estimator.booster_.current_iteration()
    assert plain.estimator.booster_.num_trees() == plain_rounds * n_classes
    assert "early_stopping" not in plain_metrics["model"]

    model, metrics = _model_and_metrics(samples, early_stopping=STOPPING)
    best = model.info["early_stopping"]["best_iteration"]
    assert 1 <= best < plain_rounds
    assert model.estimator.booster_.num_trees() == best * n_classes
    assert metrics["model"]["early_stopping"]["best_iteration"] == best
    assert metrics["model"]["params"]["n_estimators"] == best
    assert model.class_ids.tolist() == plain.class_ids.tolist()  # no class lost


def test_early_stopping_holds_out_training_blocks_only(samples):
    model, _ = _model_and_metrics(samples, early_stopping=STOPPING)
    chosen = model.info["early_stopping"]
    held = set(chosen["holdout_blocks"])
    blocks = samples.groupby("split")["block"].unique()
    assert held and held <= set(blocks["train"])
    assert not held & (set(blocks["validation"]) | set(blocks["test"]))
    in_held = samples["block"].isin(held)
    assert chosen["n_holdout"] == int(in_held.sum())  # every row of a held block is training
    # scrambling every validation and test pixel changes nothing about the stopping
    scrambled = samples.copy()
    held_out = scrambled["split"] != "train"
    rng = np.random.default_rng(0)
    scrambled.loc[held_out, "label"] = rng.permutation(scrambled.loc[held_out, "label"].values)
    names = model.feature_names
    scrambled.loc[held_out, names] = rng.permutation(scrambled.loc[held_out, names].values)
    again, _ = _model_and_metrics(scrambled, early_stopping=STOPPING)
    assert again.info["early_stopping"] == chosen


def test_early_stopping_seed_draws_other_blocks(samples):
    drawn = {
        seed: _model_and_metrics(samples, early_stopping={**STOPPING, "seed": seed})[0]
        for seed in (0, 1, 2)
    }
    blocks = {tuple(m.info["early_stopping"]["holdout_blocks"]) for m in drawn.values()}
    assert len(blocks) > 1
