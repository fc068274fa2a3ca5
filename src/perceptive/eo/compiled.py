"""A LightGBM model compiled, used only where it is exact: quickscorer or treelite + tl2cgen.

Prediction is the slowest link and LightGBM's ``predict`` walks its trees generically. Two
engines replace it: :mod:`perceptive.eo.quickscorer` (bit vectors compiled by numba, the
default, 9x to 14x LightGBM on 2 cores) and a library with the trees as C code (tl2cgen, 1.5x
to 2.7x; any tree size). A compiled model is used only after it gave exactly LightGBM's
probabilities on a sample of the pixels to classify; otherwise (or for another estimator)
the caller keeps the estimator's own ``predict_proba``. Compiling takes about 30 s per 1000
trees on 2 cores, so each model is compiled once, into a cache folder keyed by its hash.
The building blocks (:func:`compile_booster`, :func:`compiled_predict`) take any LightGBM
booster: cloud masking compiles s2cloudless' model with them (perceptive.eo.cloud_masking).
"""

from __future__ import annotations

import functools
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

#: How a classifier is compiled (tl2cgen parameters): ``quantize`` compares bin indices
#: instead of doubles, 2.7x LightGBM's ``predict`` against 1.9x without, with the same answers
#: (benchmarks/prediction.py; checked on every model before use, as always).
COMPILE_PARAMS = {"quantize": 1}

#: The environment variable naming the C compiler (a GCC or Clang); ``gcc`` when unset.
TOOLCHAIN_ENV = "CC"


def build_stamp() -> str:
    """What a compiled library depends on besides the trees: the compilers and the machine."""
    return f"{version('treelite')}|{version('tl2cgen')}|{platform.machine()}|{platform.system()}"


def content_key(content: str | bytes, params: dict | None = None) -> str:
    """The cache key of a model given as its text (or file bytes), compiled with tl2cgen
    ``params``, with :func:`build_stamp`."""
    data = content.encode() if isinstance(content, str) else content
    build = repr(sorted((params or {}).items())).encode()
    return hashlib.sha256(build_stamp().encode() + data + build).hexdigest()[:20]


def model_key(model: LulcModel) -> str:
    """The cache key of a LightGBM model: its trees, how they are compiled
    (:data:`COMPILE_PARAMS`), the compilers' versions, the machine."""
    return content_key(model.estimator.booster_.model_to_string(), COMPILE_PARAMS)


def toolchain() -> str:
    """The C compiler tl2cgen builds with: ``$CC`` if set, else ``gcc``."""
    return os.environ.get(TOOLCHAIN_ENV) or "gcc"


def compile_booster(booster, folder: Path, params: dict | None = None) -> Path:
    """``folder/model.so``, the compiled library of a LightGBM booster, built unless it is
    already there. Written under a temporary name, then renamed: two processes compiling the
    same model at once both finish, and a reader never sees half a library. ``params`` are
    tl2cgen's code generation parameters (default ``parallel_comp``: one C file per core);
    they are not in ``folder``'s name, so a caller that varies them keys its folders by them."""
    import tl2cgen
    import treelite

    folder = Path(folder)
    library = folder / LIBRARY
    if library.exists():
        return library
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".partial-{uuid.uuid4().hex[:8]}-{LIBRARY}"
    cores = os.cpu_count() or 1
    start = time.perf_counter()
    try:
        trees = treelite.frontend.from_lightgbm(booster)
        tl2cgen.export_lib(
            trees,
            toolchain=toolchain(),
            libpath=str(tmp),
            params={"parallel_comp": cores, **(params or {})},
            nthread=cores,
        )
        os.replace(tmp, library)
    finally:
        if tmp.exists():
            tmp.unlink()
        shutil.rmtree(folder / "libbuild", ignore_errors=True)
    log.info("Compiled the model into %s in %.1f s.", library, time.perf_counter() - start)
    return library


def compile_model(model: LulcModel, cache: Path) -> Path:
    """The compiled library of a fitted LightGBM model, built into ``cache/<key>/`` unless
    it is already there (written under a temporary name, then renamed)."""
    return compile_booster(model.estimator.booster_, Path(cache) / model_key(model), COMPILE_PARAMS)


def compiled_predict(library: Path) -> Callable[[np.ndarray], np.ndarray]:
    """The raw output of a compiled library: (n, features) float32 -> (n, outputs) in the
    library's own precision (float64 for a LightGBM model: its sums and sigmoid, unrounded).

    One call at a time (a lock): the library uses every core itself, and dask's threads then
    only prepare the next chunk meanwhile."""
    import tl2cgen

    predictor = tl2cgen.Predictor(str(library), nthread=_threads())
    lock = threading.Lock()

    def predict(X: np.ndarray) -> np.ndarray:
        matrix = tl2cgen.DMatrix(np.ascontiguousarray(X, dtype=np.float32))
        with lock:
            return np.asarray(predictor.predict(matrix)).reshape(len(X), -1)

    return predict


def _threads() -> int:
    """The cores the library may use: OpenMP's own limit where it is set (a dask.distributed
    worker sets OMP_NUM_THREADS to its threads, and tl2cgen refuses more), else every core."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=8)
def _loaded(library: Path) -> Callable[[np.ndarray], np.ndarray]:
    """One loaded library per process (dask threads share it; it uses every core itself)."""
    if not library.exists():
        raise FileNotFoundError(
            f"The compiled model {library} is not on {platform.node()}: with a dask cluster "
            "on other machines, compiled_model.cache must be a folder every worker sees; or "
            "set compiled_model.enabled: false."
        )
    return compiled_predict(library)


class CompiledProba:
    """``predict_proba`` of a compiled library: (n, features) float32 -> (n, k) float32.

    Pickled as the library's path, since a loaded tl2cgen predictor is a native handle that
    cannot be: a dask.distributed worker (another process) loads the library itself."""

    def __init__(self, library: Path, n_classes: int) -> None:
        self.library, self.n_classes = Path(library), n_classes

    def __reduce__(self):
        return (type(self), (self.library, self.n_classes))

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if len(X) == 0:
            return np.zeros((0, self.n_classes), dtype=np.float32)
        out = _loaded(self.library)(X)
        if self.n_classes == 2 and out.shape[1] == 1:  # binary: the positive class only
            out = np.hstack([1.0 - out, out])
        return out.astype(np.float32)


def compiled_predict_proba(library: Path, n_classes: int) -> CompiledProba:
    """``predict_proba`` of a compiled library (see :class:`CompiledProba`)."""
    return CompiledProba(library, n_classes)


def exact_compiled_predict_proba(
    model: LulcModel, sample: np.ndarray, cache: Path, engine: str = "quickscorer"
) -> Callable[[np.ndarray], np.ndarray] | None:
    """A compiled ``predict_proba`` of the model if it gives exactly the estimator's
    probabilities on ``sample`` (pixels, features); None for non-LightGBM estimators, when
    it cannot be compiled (no C compiler, say), or on any difference (then predict with
    ``model.predict_proba``: compiling only ever makes prediction faster, never fail).

    ``engine``: ``quickscorer`` (:mod:`perceptive.eo.quickscorer`; a model it cannot score
    goes to tl2cgen) or ``tl2cgen`` (C code, compiled into ``cache``)."""
    from lightgbm import LGBMClassifier

    if not isinstance(model.estimator, LGBMClassifier):
        log.info("Not compiled: %s is not LightGBM.", type(model.estimator).__name__)
        return None
    proba = None
    if engine == "quickscorer":
        from perceptive.eo.quickscorer import QuickScorer, Unsupported

        try:
            proba = QuickScorer(model.estimator.booster_)
        except Unsupported as exc:
            log.info("quickscorer cannot score this model (%s); compiling it with tl2cgen.", exc)
    if proba is None:
        proba = _tl2cgen_predict_proba(model, cache)
        if proba is None:
            return None
    sample = np.asarray(sample, dtype=np.float32)
    expected, got = model.predict_proba(sample), proba(sample)
    name = type(proba).__name__
    if expected.shape != got.shape or not np.array_equal(expected, got):
        diff = np.max(np.abs(expected - got)) if expected.shape == got.shape else expected.shape
        log.warning("%s differs from LightGBM (%s); predicting with LightGBM.", name, diff)
        return None
    log.info("%s matches LightGBM on %d sample pixels; predicting with it.", name, len(got))
    return proba


def engine_name(predict_proba: Callable | None) -> str:
    """What predicts: ``quickscorer``, ``tl2cgen`` or ``estimator`` (``predict_proba`` None)."""
    if predict_proba is None:
        return "estimator"
    return "tl2cgen" if isinstance(predict_proba, CompiledProba) else "quickscorer"


def _tl2cgen_predict_proba(model: LulcModel, cache: Path) -> CompiledProba | None:
    """The model compiled by tl2cgen (cached), or None after a warning if it cannot be."""
    try:
        library = compile_model(model, cache)
    except Exception as exc:  # any failure of the optional accelerator: tl2cgen, the compiler
        log.warning(
            "Could not compile the model (%s: %s) with the C compiler %r ($%s); predicting "
            "with LightGBM. Install gcc, or set compiled_model.enabled: false to not try.",
            type(exc).__name__, str(exc)[:300], toolchain(), TOOLCHAIN_ENV,
        )  # fmt: skip
        return None
    return compiled_predict_proba(library, len(model.class_ids))
