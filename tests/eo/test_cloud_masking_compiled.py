"""s2cloudless' model compiled to native code: the same probabilities and masks as plain
s2cloudless on real L1C, and plain s2cloudless whenever compiling is impossible or inexact.

Compiling takes minutes: the session fixture compiles once into the user's cache
(``$XDG_CACHE_HOME/perceptive/s2cloudless``, where every run looks), so a fresh machine (CI)
pays it once and later sessions not at all."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from pyproj import CRS

from perceptive.eo import cloud_masking
from perceptive.eo.cloud_masking import (
    AUTO_MIN_PIXELS_CACHED,
    AUTO_MIN_PIXELS_COMPILE,
    METHODS,
    _pixel_probability,
    _plain_probability,
    check_sample,
    choose_library,
    cloud_masks,
    default_cache,
    exact_library,
    library_folder,
)
from perceptive.eo.compiled import LIBRARY, TOOLCHAIN_ENV
from perceptive.eo.cube import S2_BANDS, make_l1c_cube
from perceptive.eo.grid import Grid
from perceptive.eo.links import LinkError

CROP = Path(__file__).resolve().parents[1] / "data" / "s2_l1c_crop"
#: The crop: 96 x 96 px at 10 m, UTM 33N (see its ATTRIBUTION.md).
CROP_GRID = Grid(CRS.from_epsg(32633), 336000.0, 5819040.0, 10.0, 96, 96)
#: The exact path: processing at the cube's 10 m.
EXACT = {"processing_resolution": 10, "threshold": 0.4, "average_over": 1, "dilation_size": 1}


@pytest.fixture(scope="session")
def library() -> str:
    """The compiled model in the default cache, compiled there by the first session."""
    found = exact_library(str(default_cache()))
    assert found is not None, "s2cloudless did not compile (is gcc installed?)"
    return found


@pytest.fixture(scope="module")
def real_l1c():
    """The real L1C crop as a cube on its 10 m grid (20 and 60 m bands repeated), 32 px tiles."""
    bands = []
    for band in S2_BANDS:
        with rasterio.open(next(CROP.glob(f"*_{band}.jp2"))) as src:
            dn = src.read(1)
        k = CROP_GRID.height // dn.shape[0]
        bands.append(np.repeat(np.repeat(dn, k, axis=0), k, axis=1))
    times = pd.DatetimeIndex(["2017-02-16T10:21:01"])
    return make_l1c_cube(np.stack(bands)[np.newaxis], times, CROP_GRID).chunk({"y": 32, "x": 32})


def test_compiled_probabilities_equal_s2cloudless_on_real_l1c(library, real_l1c):
    dn = real_l1c["bands"].values[0]
    pixels = dn.reshape(len(S2_BANDS), -1).T.astype(np.float32) / np.float32(10000)
    plain = _plain_probability(pixels)
    compiled = _pixel_probability(pixels, library)
    assert compiled.dtype == plain.dtype == np.float32
    assert np.array_equal(compiled, plain)
    assert plain.min() < 0.2 and plain.max() > 0.4  # clear land and cloudy pixels both


@pytest.mark.parametrize("resolution", [10, 160])
def test_compiled_masks_equal_s2cloudless_on_real_l1c(library, real_l1c, resolution):
    """At 10 m (the exact path, tile by tile) and at the 160 m default (block means)."""
    settings = {**EXACT, "processing_resolution": resolution}
    plain = cloud_masks(real_l1c, **settings, compiled=False)
    compiled = cloud_masks(real_l1c, **settings, compiled=True)
    assert (plain.attrs["predictor"], compiled.attrs["predictor"]) == ("s2cloudless", "compiled")
    plain, compiled = plain.compute(), compiled.compute()
    for name in ("cloud_prob", "cloud_mask"):
        np.testing.assert_array_equal(compiled[name].values, plain[name].values)
    if resolution == 10:
        mask = plain["cloud_mask"].values
        assert mask.any() and not mask.all()


def test_compiled_once_into_a_folder_keyed_by_the_model(library):
    folder = library_folder(default_cache())
    assert Path(library) == folder / LIBRARY
    assert not list(folder.glob(".partial-*"))  # written under a temporary name, renamed
    stamp = Path(library).stat().st_mtime_ns
    assert choose_library(True, 1) == library
    assert Path(library).stat().st_mtime_ns == stamp  # reused, not rebuilt


def test_check_sample_probes_every_threshold_of_the_model():
    sample = check_sample(cloud_masking._booster())
    assert sample.shape == (cloud_masking.CHECK_PIXELS, 13) and sample.dtype == np.float32
    assert (sample > 0).all()  # like every real reflectance (DN 0 is no data)
    np.testing.assert_array_equal(sample, check_sample(cloud_masking._booster()))  # fixed


def test_without_a_compiler_plain_s2cloudless(tmp_path, monkeypatch, caplog, real_l1c):
    """No C compiler (CC names none): compiling fails, the run goes on with plain s2cloudless
    and the log says why; nothing is left in the cache."""
    monkeypatch.setenv(TOOLCHAIN_ENV, str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING, logger="perceptive.eo.cloud_masking"):
        found = cloud_masks(real_l1c, **EXACT, compiled=True)
    assert found.attrs["predictor"] == "s2cloudless"
    assert "s2cloudless not compiled" in caplog.text and "no-such-cc" in caplog.text
    assert not list((tmp_path / "cache").rglob(LIBRARY))
    plain = cloud_masks(real_l1c, **EXACT, compiled=False).compute()
    np.testing.assert_array_equal(found["cloud_mask"].values, plain["cloud_mask"].values)


def test_a_failing_build_falls_back(tmp_path, monkeypatch, caplog):
    def fail(*args, **kwargs):
        raise RuntimeError("the build broke")

    monkeypatch.setattr(cloud_masking, "compile_booster", fail)
    with caplog.at_level(logging.WARNING, logger="perceptive.eo.cloud_masking"):
        assert choose_library(True, 10**9, cache=tmp_path) is None
    assert "RuntimeError: the build broke" in caplog.text


def test_an_inexact_library_is_not_used(library, monkeypatch, caplog):
    """The check sample catches a compiled model off by one float32 step anywhere."""
    exact = cloud_masking._compiled(library)

    def off_by_an_ulp(path):
        def predict(X):
            out = exact(X)
            out[len(out) // 2] = np.nextafter(np.float32(out[len(out) // 2, 0]), np.float32(2))
            return out

        return predict

    monkeypatch.setattr(cloud_masking, "_compiled", off_by_an_ulp)
    exact_library.cache_clear()  # checked again, with the altered library
    try:
        with caplog.at_level(logging.WARNING, logger="perceptive.eo.cloud_masking"):
            assert choose_library(True, 1) is None
        assert "differs from s2cloudless" in caplog.text
    finally:
        exact_library.cache_clear()


def test_auto_compiles_only_when_it_pays(library, tmp_path):
    """auto: plain s2cloudless for a few pixels; the cached library from a few hundred
    thousand; compiling first only for many millions (not tried here: an empty cache)."""
    cache = default_cache()
    assert choose_library("auto", AUTO_MIN_PIXELS_CACHED - 1, cache) is None
    assert choose_library("auto", AUTO_MIN_PIXELS_CACHED, cache) == library
    assert choose_library("auto", AUTO_MIN_PIXELS_COMPILE - 1, tmp_path) is None
    assert not list(tmp_path.iterdir())  # nothing compiled
    assert choose_library(False, 10**12, cache) is None


def test_compiled_is_an_s2cloudless_option():
    for value in ("auto", True, False):
        assert METHODS.validate({"method": "s2cloudless", "compiled": value})["compiled"] == value
    assert METHODS.validate({"method": "s2cloudless"})["compiled"] == "auto"
    with pytest.raises(LinkError, match="compiled"):
        METHODS.validate({"method": "s2cloudless", "compiled": "sometimes"})
