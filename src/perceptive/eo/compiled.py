"""A LightGBM model compiled to native code (treelite + tl2cgen), used only where it is exact.

Prediction is the slowest link and LightGBM's ``predict`` walks its trees generically; the
compiled library has the trees as C code. It is used only after it gave exactly LightGBM's
probabilities on a sample of the pixels to classify; otherwise (or for another estimator)
the caller keeps the estimator's own ``predict_proba``. Compiling takes about 20 s per 1000
trees on 2 cores, so each model is compiled once, into a cache folder keyed by its hash.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import numpy as np

from perceptive.eo.classifier import LulcModel

log = logging.getLogger(__name__)

LIBRARY = "model.so"


def model_key(model: LulcModel) -> str:
    """The cache key of a LightGBM model: its trees, the compilers' versions, the machine."""
    text = model.estimator.booster_.model_to_string()
    stamp = f"{version('treelite')}|{version('tl2cgen')}|{platform.machine()}|{platform.system()}"
    return hashlib.sha256((stamp + text).encode()).hexdigest()[:20]


def compile_model(model: LulcModel, cache: Path) -> Path:
    """The compiled library of a fitted LightGBM model, built into ``cache/<key>/`` unless
    it is already there (written under a temporary name, then renamed)."""
    import tl2cgen
    import treelite

    folder = Path(cache) / model_key(model)
    library = folder / LIBRARY
    if library.exists():
        return library
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".partial-{uuid.uuid4().hex[:8]}-{LIBRARY}"
    start = time.perf_counter()
    try:
        trees = treelite.frontend.from_lightgbm(model.estimator.booster_)
        tl2cgen.export_lib(
            trees,
            toolchain="gcc",
            libpath=str(tmp),
            params={"parallel_comp": os.cpu_count() or 1},
            nthread=os.cpu_count() or 1,
        )
        os.replace(tmp, library)
    finally:
        if tmp.exists():
            tmp.unlink()
        shutil.rmtree(folder / "libbuild", ignore_errors=True)
    log.info("Compiled the model into %s in %.1f s.", library, time.perf_counter() - start)
    return library


def compiled_predict_proba(library: Path, n_classes: int) -> Callable[[np.ndarray], np.ndarray]:
    """``predict_proba`` of a compiled library: (n, features) float32 -> (n, k) float32.

    One call at a time (a lock): the library uses every core itself, and dask's threads then
    only prepare the next chunk meanwhile."""
    import tl2cgen

    predictor = tl2cgen.Predictor(str(library), nthread=os.cpu_count() or 1)
    lock = threading.Lock()

    def predict_proba(X: np.ndarray) -> np.ndarray:
        if len(X) == 0:
            return np.zeros((0, n_classes), dtype=np.float32)
        matrix = tl2cgen.DMatrix(np.ascontiguousarray(X, dtype=np.float32))
        with lock:
            out = np.asarray(predictor.predict(matrix)).reshape(len(X), -1)
        if n_classes == 2 and out.shape[1] == 1:  # binary: the positive class only
            out = np.hstack([1.0 - out, out])
        return out.astype(np.float32)

    return predict_proba


def exact_compiled_predict_proba(
    model: LulcModel, sample: np.ndarray, cache: Path
) -> Callable[[np.ndarray], np.ndarray] | None:
    """The compiled model's ``predict_proba`` if it gives exactly the estimator's
    probabilities on ``sample`` (pixels, features); None for non-LightGBM estimators or on
    any difference (then predict with ``model.predict_proba``)."""
    from lightgbm import LGBMClassifier

    if not isinstance(model.estimator, LGBMClassifier):
        log.info("Not compiled: %s is not LightGBM.", type(model.estimator).__name__)
        return None
    proba = compiled_predict_proba(compile_model(model, cache), len(model.class_ids))
    sample = np.asarray(sample, dtype=np.float32)
    expected, got = model.predict_proba(sample), proba(sample)
    if expected.shape != got.shape or not np.array_equal(expected, got):
        diff = np.max(np.abs(expected - got)) if expected.shape == got.shape else expected.shape
        log.warning("Compiled model differs from LightGBM (%s); predicting with LightGBM.", diff)
        return None
    log.info("Compiled model matches LightGBM on %d sample pixels; predicting with it.", len(got))
    return proba
