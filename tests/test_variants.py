"""Variants: files of parameter overrides, layered like any layer, recognised by their hash."""

from __future__ import annotations

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from perceptive.provenance import jsonable
from perceptive.variants import (
    BASE,
    VariantError,
    available,
    load_variant,
    parameters_hash,
)
from tests.conftest import PROJECT

CONF = PROJECT / "conf"


def test_shipped_variants_cover_the_links_the_issue_names():
    assert {"no_clouds", "nearest", "whittaker", "rf", "samples_10k", "majority"} <= set(
        available(CONF)
    )
    assert available(CONF)[0] == BASE


@pytest.mark.parametrize("name", available(CONF))
def test_every_variant_gives_valid_parameters_that_differ_from_base(name, tmp_path):
    """A variant's overrides pass the parameter schema and change what they say."""
    bootstrap_project(PROJECT)
    variant = load_variant(name, CONF)
    runtime = variant.runtime_params({"data_root": str(tmp_path)})
    with KedroSession.create(project_path=PROJECT, runtime_params=runtime) as session:
        params = jsonable(session.load_context().params)
    for key, value in variant.parameters.items():
        for option, setting in value.items():
            assert params[key][option] == setting
    base = load_variant(BASE, CONF).runtime_params({"data_root": str(tmp_path)})
    with KedroSession.create(project_path=PROJECT, runtime_params=base) as session:
        base_params = jsonable(session.load_context().params)
    assert (parameters_hash(params) == parameters_hash(base_params)) == (name == BASE)


def test_a_variant_switching_a_method_drops_the_old_methods_options():
    rf = load_variant("rf", CONF)
    merged = rf.runtime_params({"classifier": {"learning_rate": 0.3}, "tile_size": 128})
    assert merged["classifier"]["method"] == "random_forest"
    assert "learning_rate" not in merged["classifier"]
    assert merged["tile_size"] == 128


def test_an_unknown_variant_names_the_close_one_and_the_folder():
    with pytest.raises(VariantError, match=r"Did you mean 'rf'\?.*no_clouds"):
        load_variant("rff", CONF)


def test_a_malformed_variant_is_refused(tmp_path):
    folder = tmp_path / "base" / "variants"
    folder.mkdir(parents=True)
    (folder / "odd.yml").write_text("classifier: {method: random_forest}\n")
    with pytest.raises(VariantError, match="only `description`"):
        load_variant("odd", tmp_path)


def test_the_hash_ignores_where_data_lives_but_not_what_is_computed():
    params = {
        "data_root": "/a",
        "dask": {"scheduler": "threads"},
        "compiled_model": {"enabled": False, "cache": "/a/cache"},
        "classifier": {"method": "lightgbm", "n_estimators": 200},
    }
    moved = {
        **params,
        "data_root": "/b",
        "dask": {"scheduler": "local_cluster"},
        "compiled_model": {"enabled": False, "cache": "/b/cache"},
    }
    changed = {**params, "classifier": {"method": "lightgbm", "n_estimators": 100}}
    assert parameters_hash(params) == parameters_hash(moved)
    assert parameters_hash(params) != parameters_hash(changed)
    # a new option left unset (None) changes nothing; set, it does
    newer = {**params, "classifier": {**params["classifier"], "max_bin": None}}
    assert parameters_hash(newer) == parameters_hash(params)
    newer["classifier"]["max_bin"] = 63
    assert parameters_hash(newer) != parameters_hash(params)
    assert params["data_root"] == "/a"  # not modified in place
