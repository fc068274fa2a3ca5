"""Bad parameters stop the run at once with an error that names the problem and the fix."""

import pytest

from tests.conftest import run_kedro


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"source": {"method": "planet"}}, r"unknown source method 'planet'.*demo"),
        ({"aoi": {"bbox": [500000, 5100000, 500000, 5100100], "crs": "EPSG:32633"}}, "no area"),
        (
            {"aoi": {"geometry": {"type": "Polygon",
                                  "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
                     "crs": "EPSG:32633", "bbox": None}},
            "invalid",
        ),
        ({"time_interval": ["2017-12-31", "2017-01-01"]}, "reversed.*swap"),
    ],
)  # fmt: skip
def test_bad_ingestion_parameters(tmp_path, params, message):
    with pytest.raises(Exception, match=message):
        run_kedro(tmp_path, ["ingestion"], **params)
    assert not list(tmp_path.rglob("*.zarr/*"))  # nothing half-written
