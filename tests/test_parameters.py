"""Bad parameters stop a run before its first node, through the real Kedro session, with one
message that names each key, the value, where it was set and the fix; and the layering of
conf/base, conf/local and --params (a link that switches method drops the old options).

Refusals that need data (how many frames are clear enough) can only come from a node; they
say what passed and what to change.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import xarray as xr
import yaml

from perceptive.config import ParameterError, ProjectConfigLoader
from tests.conftest import PROJECT, run_kedro

#: Folders that hold datasets; the run record and MLflow files next to them are not checked.
DATA_LAYERS = ("01_raw", "02_intermediate", "03_primary", "04_feature", "05_model_input",
               "06_models", "07_model_output", "08_reporting")  # fmt: skip

#: 64 x 64 px at 10 m, for the runs that reach a node.
TINY_AOI = {"bbox": [500000, 5099360, 500640, 5100000], "crs": "EPSG:32633"}
TINY = {
    "aoi": TINY_AOI,
    "tile_size": 32,
    "cloud_masking": {"processing_resolution": 80},
    "sampling": {"block_size": 16},
}

SELF_INTERSECTING = {
    "type": "Polygon",  # a bow tie
    "coordinates": [[[500000, 5099000], [501000, 5100000], [501000, 5099000],
                     [500000, 5100000], [500000, 5099000]]],
}  # fmt: skip
SQUARE = {
    "type": "Polygon",
    "coordinates": [[[500000, 5099000], [501000, 5099000], [501000, 5100000],
                     [500000, 5100000], [500000, 5099000]]],
}  # fmt: skip


def written(data_root: Path) -> list[Path]:
    """Every dataset file under ``data_root``."""
    return [p for layer in DATA_LAYERS for p in (data_root / layer).rglob("*") if p.is_file()]


def case(pipeline: str, params: dict, key: str, *fix: str, id: str):
    """A bad-parameter case: run ``pipeline`` with ``params``; the message must name ``key``
    (the dotted key, or the link for a link's method or options) and hold each ``fix`` text."""
    return pytest.param(pipeline, params, key, fix, id=id)


CASES = [
    # unknown keys
    case("sampling", {"sampling": {"erosion_raduis": 1}}, "sampling.erosion_raduis",
         "unknown key", "Did you mean 'erosion_radius'?", id="typo-key"),
    case("sampling", {"samplng": {"n_samples": 10}}, "samplng",
         "unknown key", "Did you mean 'sampling'?", id="typo-top-level-key"),
    case("ingestion", {"reference": {"class_colum": "lc"}}, "reference.class_colum",
         "Did you mean 'class_column'?", "Allowed here: file, class_column", id="typo-reference"),
    # wrong types
    case("sampling", {"sampling": {"n_samples": "twenty"}}, "sampling.n_samples",
         "'twenty'", "valid integer", id="n_samples-text"),
    case("ingestion", {"tile_size": "big"}, "tile_size", "'big'", "valid integer",
         id="tile_size-text"),
    case("feature_engineering", {"date_grid": 16}, "date_grid", "valid dictionary",
         id="date_grid-not-a-mapping"),
    # out of range
    case("ingestion", {"resolution": -10}, "resolution", "-10", "greater than 0",
         id="negative-resolution"),
    case("sampling", {"sampling": {"validation_fraction": 1.5}}, "sampling.validation_fraction",
         "1.5", "less than 1", id="validation_fraction-above-1"),
    case("feature_engineering", {"cloud_masking": {"threshold": 2}}, "cloud_masking",
         "option 'threshold' = 2", "less than 1", id="cloud-threshold-above-1"),
    case("sampling", {"sampling": {"n_samples": 0}}, "sampling.n_samples",
         "= 0", "greater than or equal to 2", id="n_samples-0"),
    case("feature_engineering", {"min_valid_fraction": 1.2}, "min_valid_fraction",
         "1.2", "less than or equal to 1", id="min_valid_fraction-above-1"),
    case("feature_engineering", {"date_grid": {"step_days": 0}}, "date_grid.step_days",
         "= 0", "greater than or equal to 1", id="step_days-0"),
    case("ingestion", {"tile_size": 8}, "tile_size", "= 8", "greater than or equal to 16",
         id="tile_size-8"),
    case("ingestion", {"source": {"mislabel_fraction": 1.0}}, "source",
         "option 'mislabel_fraction' = 1.0", "less than 1", id="source-option-range"),
    # unknown methods
    case("feature_engineering", {"cloud_masking": {"method": "fmask"}}, "cloud_masking",
         "unknown cloud_masking method 'fmask'", "Choose one of: from_source, none, s2cloudless",
         id="cloud-method-fmask"),
    case("feature_engineering", {"interpolation": {"method": "spline"}}, "interpolation",
         "unknown interpolation method 'spline'", "Choose one of: cubic, linear, nearest",
         id="interpolation-method-spline"),
    case("ingestion", {"source": {"method": "planet"}}, "source",
         "unknown source method 'planet'", "Choose one of: demo", id="source-method-planet"),
    case("modelling", {"classifier": {"method": "LGBMClassifier"}}, "classifier",
         "unknown classifier 'LGBMClassifier'", "lightgbm, random_forest",
         "sklearn.ensemble.ExtraTreesClassifier", id="classifier-class-name"),
    case("modelling", {"classifier": {"method": "sklearn.linear_model.LinearRegression"}},
         "classifier", "not a scikit-learn classifier with predict_proba",
         id="classifier-not-a-classifier"),
    case("modelling", {"classifier": {"method": "random_forest"},
                       "early_stopping": {"enabled": True}},
         "early_stopping", "classifier 'random_forest' cannot stop early",
         "set early_stopping.enabled to false", id="early-stopping-random-forest"),
    case("modelling", {"early_stopping": {"holdout_fraction": 1.0}},
         "early_stopping.holdout_fraction", "= 1.0", "less than 1",
         id="early-stopping-holdout-fraction-1"),
    # unknown method options
    case("modelling", {"classifier": {"num_leafs": 3}}, "classifier",
         "lightgbm has no option(s) ['num_leafs']", "num_leaves", id="lightgbm-option-typo"),
    case("modelling", {"classifier": {"method": "random_forest", "learning_rate": 0.1}},
         "classifier", "random_forest has no option(s) ['learning_rate']", "n_estimators",
         id="random_forest-lightgbm-option"),
    case("feature_engineering", {"cloud_masking": {"thresold": 0.3}}, "cloud_masking",
         "no option 'thresold'", "Did you mean 'threshold'?", id="cloud-option-typo"),
    case("ingestion", {"source": {"revisit": 3}}, "source",
         "no option 'revisit'", "Did you mean 'revisit_days'?", id="source-option-typo"),
    case("feature_engineering", {"interpolation": {"method": "linear", "lam": 10}},
         "interpolation", "linear has no option 'lam'", id="interpolation-option"),
    # the AOI
    case("ingestion", {"aoi": {"bbox": [500000, 5100000, 500000, 5100100]}}, "aoi.bbox",
         "has no area", "minx < maxx", id="aoi-no-area"),
    case("ingestion", {"aoi": {"bbox": None, "geometry": SELF_INTERSECTING}}, "aoi",
         "invalid (Self-intersection", "make_valid", id="aoi-self-intersecting"),
    case("ingestion", {"aoi": {"bbox": [5094880, 500000, 5100000, 505120]}}, "aoi",
         "look swapped", "Give x (easting or longitude) first", id="aoi-swapped-xy"),
    case("ingestion", {"aoi": {"crs": "EPSG:99999"}}, "aoi.crs",
         "'EPSG:99999' is not a CRS", id="aoi-unknown-crs"),
    case("ingestion", {"aoi": {"bbox": TINY_AOI["bbox"], "geometry": SQUARE}}, "aoi",
         "exactly one of 'bbox', 'geometry' or 'file'", "['bbox', 'geometry']",
         id="aoi-bbox-and-geometry"),
    case("ingestion", {"aoi": {"bbox": TINY_AOI["bbox"], "file": "aoi.gpkg"}}, "aoi",
         "exactly one of 'bbox', 'geometry' or 'file'", "['bbox', 'file']",
         id="aoi-bbox-and-file"),
    # time, features, legend, reference
    case("ingestion", {"time_interval": ["2017-12-31", "2017-01-01"]}, "time_interval",
         "reversed", "swap the two dates", id="time_interval-reversed"),
    case("ingestion", {"time_interval": ["2017-02-30", "2017-03-01"]}, "time_interval =",
         "'2017-02-30'", "valid date", id="time_interval-no-such-day"),
    case("feature_engineering", {"features": ["NDVI", "EVI"]}, "features",
         "feature(s) ['EVI']", "available: B01", id="unknown-feature"),
    case("sampling", {"legend": [{"id": 1, "name": "crops", "colour": "#ffff00"},
                                 {"id": 1, "name": "forest", "colour": "#054907"}]},
         "legend", "must be unique", "[1, 1]", id="legend-duplicate-ids"),
    case("sampling", {"legend": [{"id": 1, "name": "crops", "colour": "yellow"}]},
         "legend.0.colour", "'yellow'", "#[0-9a-fA-F]{6}", id="legend-bad-colour"),
    case("sampling", {"legend": [{"id": 300, "name": "crops", "colour": "#ffff00"}]},
         "legend.0.id", "less than or equal to 255", id="legend-id-above-255"),
    case("ingestion", {"reference": {"file": "no/such/labels.gpkg"}}, "reference.file",
         "no file 'no/such/labels.gpkg'", "GeoPackage", id="reference-file-missing"),
    # valid alone, not on this AOI (the default one, 512 x 512 px at 10 m)
    case("sampling", {"sampling": {"erosion_radius": 1000}}, "sampling.erosion_radius",
         "larger than the AOI (512 x 512 px)", "use 1 or 2 px", id="erosion-larger-than-aoi"),
    case("feature_engineering", {"cloud_masking": {"average_over": 40}},
         "cloud_masking.average_over", "= 40", "more than the AOI", "lower them",
         id="cloud-kernel-larger-than-aoi"),
    case("feature_engineering", {"cloud_masking": {"dilation_m": 6000}},
         "cloud_masking.dilation_m", "= 40 pixels", "more than the AOI",
         id="cloud-dilation-in-metres-larger-than-aoi"),
    case("sampling", {"sampling": {"block_size": 1024}}, "sampling.block_size",
         "one block covers the whole AOI", "use at most 256", id="block-larger-than-aoi"),
    case("feature_engineering", {"cloud_masking": {"processing_resolution": 25}},
         "cloud_masking.processing_resolution", "= 25",
         "whole multiple of the resolution (10 m)", id="processing-resolution-not-multiple"),
    case("ingestion", {"reference": {"class_mapping": {"211": 1, "311": 42}}},
         "reference.class_mapping", "maps codes to [42], which the legend lacks",
         "add the classes to `legend`", id="mapping-to-an-id-the-legend-lacks"),
]  # fmt: skip


@pytest.mark.parametrize(("pipeline", "params", "key", "fix"), CASES)
def test_bad_parameter_stops_the_run_before_any_node(tmp_path, pipeline, params, key, fix):
    with pytest.raises(ParameterError, match=re.escape(key)) as err:
        run_kedro(tmp_path, [pipeline], **params)
    message = str(err.value)
    assert message.startswith("Invalid parameters (1 problem; nothing was run)")
    assert re.search(r"\(set in [^)\n]*--params[^)\n]*\)", message)  # where it was set
    for text in fix:
        assert text in message
    assert written(tmp_path) == []


def test_several_problems_are_listed_in_one_message(tmp_path):
    params = {
        "samplng": {"n_samples": 10},
        "sampling": {"n_samples": 0},
        "tile_size": "big",
        "cloud_masking": {"method": "fmask"},
    }
    with pytest.raises(ParameterError) as err:
        run_kedro(tmp_path, ["ingestion"], **params)
    message = str(err.value)
    assert message.startswith("Invalid parameters (4 problems; nothing was run)")
    for key in ("samplng", "sampling.n_samples = 0", "tile_size = 'big'", "'fmask'"):
        assert key in message
    assert len(re.findall(r"^  - ", message, flags=re.MULTILINE)) == 4
    assert written(tmp_path) == []


def test_several_conflicts_with_the_aoi_are_listed_in_one_message(tmp_path):
    params = {
        "sampling": {"erosion_radius": 1000, "block_size": 1024},
        "cloud_masking": {"processing_resolution": 25},
    }
    with pytest.raises(ParameterError) as err:
        run_kedro(tmp_path, ["sampling"], **params)
    message = str(err.value)
    assert message.startswith("Invalid parameters (3 problems; nothing was run)")
    for key in ("sampling.erosion_radius", "sampling.block_size",
                "cloud_masking.processing_resolution"):  # fmt: skip
        assert f"- {key} = " in message
    assert written(tmp_path) == []


def test_too_few_clear_frames_are_refused_by_the_node_with_the_count(tmp_path):
    """Only the data tell how many frames are clear enough: the error comes from the node and
    says how many frames passed."""
    with pytest.raises(ValueError, match="min_valid_fraction=1") as err:
        run_kedro(tmp_path, ["ingestion", "feature_engineering"], **TINY,
                  time_interval=["2017-05-01", "2017-05-31"], min_valid_fraction=1.0)  # fmt: skip
    masks_zarr = next((tmp_path / "03_primary" / "masks_cube.zarr").glob("*/masks_cube.zarr"))
    share = xr.open_zarr(masks_zarr)["is_valid"].mean(("y", "x")).values
    clear = int((share >= 1.0).sum())
    assert len(share) == 7 and clear < 3  # 1, 6, ..., 31 May; fewer than the 3 needed
    message = str(err.value)
    assert f"Only {clear} frame(s) have a valid-pixel fraction" in message
    assert "3 needed: 7 frame(s)" in message
    assert "Lower min_valid_fraction" in message
    assert not (tmp_path / "04_feature").exists()


# --------------------------------------------------------------------------- layering


def load_parameters(conf_source: Path = PROJECT / "conf", **runtime) -> dict:
    loader = ProjectConfigLoader(
        conf_source=str(conf_source),
        base_env="base",
        default_run_env="local",
        runtime_params=runtime,
    )
    return loader["parameters"]


def base_classifier() -> dict:
    """The classifier block of conf/base, read as plain YAML."""
    text = (PROJECT / "conf" / "base" / "parameters_modelling.yml").read_text()
    return yaml.safe_load(text)["classifier"]


@pytest.fixture
def conf_with_local(tmp_path):
    """A conf source: the project's conf/base and a conf/local/parameters.yml to write."""
    shutil.copytree(PROJECT / "conf" / "base", tmp_path / "conf" / "base")
    (tmp_path / "conf" / "local").mkdir()

    def write(parameters: dict) -> Path:
        path = tmp_path / "conf" / "local" / "parameters.yml"
        path.write_text(yaml.safe_dump(parameters))
        return tmp_path / "conf"

    return write


def test_base_classifier_is_lightgbm_with_options():
    base = base_classifier()  # the premise of the layering tests below
    assert base["method"] == "lightgbm" and "learning_rate" in base and "num_leaves" in base
    assert load_parameters()["classifier"] == base


def test_early_stopping_is_off_by_default_and_accepted_for_lightgbm():
    assert load_parameters()["early_stopping"]["enabled"] is False
    for method in ("lightgbm", "lightgbm.LGBMClassifier"):
        params = load_parameters(classifier={"method": method}, early_stopping={"enabled": True})
        assert params["early_stopping"]["enabled"] is True
    # disabled, any classifier goes
    forest = load_parameters(classifier={"method": "random_forest"})
    assert forest["early_stopping"]["enabled"] is False


def test_switching_classifier_method_in_params_drops_the_old_options():
    classifier = load_parameters(classifier={"method": "random_forest"})["classifier"]
    assert classifier == {"method": "random_forest"}


def test_changing_one_classifier_option_keeps_the_others():
    classifier = load_parameters(classifier={"n_estimators": 50})["classifier"]
    assert classifier == {**base_classifier(), "n_estimators": 50}
    same_method = load_parameters(classifier={"method": "lightgbm", "num_leaves": 7})
    assert same_method["classifier"] == {**base_classifier(), "num_leaves": 7}


def test_switching_classifier_method_in_conf_local_drops_the_old_options(conf_with_local):
    conf = conf_with_local({"classifier": {"method": "random_forest", "n_estimators": 30}})
    assert load_parameters(conf)["classifier"] == {"method": "random_forest", "n_estimators": 30}
    # --params on top of conf/local, same method: merged key by key
    on_top = load_parameters(conf, classifier={"max_depth": 4})["classifier"]
    assert on_top == {"method": "random_forest", "n_estimators": 30, "max_depth": 4}


def test_conf_local_overrides_base_and_params_override_conf_local(conf_with_local):
    conf = conf_with_local({"sampling": {"n_samples": 500}, "min_valid_fraction": 0.5})
    params = load_parameters(conf, min_valid_fraction=0.6)
    assert params["sampling"]["n_samples"] == 500
    assert params["sampling"]["erosion_radius"] == 1  # untouched keys keep conf/base's value
    assert params["min_valid_fraction"] == 0.6


def test_errors_name_conf_local_as_where_the_value_was_set(conf_with_local):
    conf = conf_with_local({"sampling": {"n_samples": 0}, "cloud_masking": {"thresold": 0.3}})
    with pytest.raises(ParameterError) as err:
        load_parameters(conf)
    message = str(err.value)
    assert "sampling.n_samples = 0 (set in conf/local/parameters.yml)" in message
    assert "- cloud_masking.thresold = 0.3 (set in conf/local/parameters.yml)" in message
    assert "Did you mean 'threshold'?" in message
    # the same bad value, corrected by a later layer, is no error
    assert load_parameters(conf, sampling={"n_samples": 100}, cloud_masking={"method": "none"})


def test_an_aoi_given_another_way_replaces_the_base_bbox():
    """conf/base gives a bbox; a geometry (or file) in a later layer is the AOI, not a clash."""
    params = load_parameters(aoi={"geometry": SQUARE})
    assert params["aoi"]["geometry"]["type"] == "Polygon"
    assert params["aoi"]["bbox"] is None
    assert params["aoi"]["crs"] == "EPSG:32633"  # the rest of the block is kept


# --------------------------------------------------------------------------- reported gaps


def test_a_missing_aoi_file_is_a_parameter_error(tmp_path):
    with pytest.raises(ParameterError, match=r"aoi.*no/such/aoi\.gpkg"):
        run_kedro(tmp_path, ["ingestion"], aoi={"bbox": None, "file": "no/such/aoi.gpkg"})
    assert written(tmp_path) == []


def test_a_conflict_shows_the_value_in_effect():
    with pytest.raises(ParameterError) as err:  # default s2cloudless at 160 m on a 640 m AOI
        load_parameters(aoi=TINY_AOI, sampling={"block_size": 16})
    assert "cloud_masking.average_over = 2 " in str(err.value)
