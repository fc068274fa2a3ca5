"""``kedro run --resume`` (perceptive.resume): only unfinished or out-of-date nodes run, and the
result equals an uninterrupted run's.

One full run on the small demo AOI (``baseline``) is shared; each test changes one thing and
checks which nodes the resumed run ran, from its run record.
"""

from __future__ import annotations

import copy
import importlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
import yaml
from click.testing import CliRunner
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.io.core import AbstractVersionedDataset, DatasetError
from kedro_datasets.matplotlib import MatplotlibDataset
from PIL import Image

from perceptive.cli import cli
from perceptive.datasets import manifest
from perceptive.pipeline_registry import LINKS
from perceptive.resume import plan_for_run, read_provenance
from perceptive.run_listing import read_records
from tests.conftest import PROJECT, SMALL_RUN, kill_when, run_kedro

INGESTION = {"define_aoi", "fetch_l1c", "import_reference_labels"}

outcomes = logging.getLogger(__name__)  # where each kill landed


def nodes_of(*links: str) -> set[str]:
    return {
        n.name
        for link in links
        for n in importlib.import_module(f"perceptive.pipelines.{link}").create_pipeline().nodes
    }


ALL_NODES = nodes_of(*LINKS)


def merged(base: dict, change: dict) -> dict:
    """``base`` with ``change`` merged in, key by key (as ``--params`` merges)."""
    out = dict(base)
    for key, value in change.items():
        old = out.get(key)
        out[key] = (
            merged(old, value) if isinstance(value, dict) and isinstance(old, dict) else value
        )
    return out


#: The small demo run, with fewer trees: training is most of a small run's time.
RUN = merged(SMALL_RUN, {"classifier": {"n_estimators": 20}})


def params(data_root: Path, **change) -> dict:
    return merged({"data_root": str(data_root), **RUN}, change)


def resume(data_root: Path, **change):
    """What ``kedro run --resume`` does: plan, then run the nodes to run with the reused
    versions pinned. Returns the plan and the record of the run (None when nothing ran)."""
    runtime = params(data_root, **change)
    plan = plan_for_run(PROJECT, runtime_params=runtime)
    if not plan.to_run:
        return plan, None
    bootstrap_project(PROJECT)
    with KedroSession.create(project_path=PROJECT, runtime_params=runtime) as session:
        session.run(node_names=plan.to_run, load_versions=plan.pins)
    return plan, newest_record(data_root)


def newest_record(data_root: Path) -> dict:
    return read_records(data_root)[0]


def saved_by(record: dict) -> set[str]:
    return {name for name, entry in record["datasets"].items() if entry.get("saved")}


def outputs_of(node_names: set[str]) -> set[str]:
    """The versioned datasets these nodes write (in-memory hand-overs are not in records)."""
    return {
        out
        for link in LINKS
        for n in importlib.import_module(f"perceptive.pipelines.{link}").create_pipeline().nodes
        if n.name in node_names
        for out in n.outputs
        if out not in {"aoi_grid", "aoi_shape", "source_reference_labels"}
    }


def lulc_pixels(data_root: Path, version: str) -> np.ndarray:
    path = data_root / "07_model_output" / "lulc_map.tif" / version / "lulc_map.tif"
    with rasterio.open(path) as src:
        return src.read()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """(data_root, record) of one uninterrupted run of the whole workflow."""
    data_root = tmp_path_factory.mktemp("resume")
    run_kedro(data_root, **RUN)
    return data_root, newest_record(data_root)


def test_resume_with_same_parameters_runs_nothing(baseline, tmp_path, caplog):
    data_root, record = baseline
    config = tmp_path / "run.yml"
    config.write_text(yaml.safe_dump({"run": {"params": params(data_root)}}))
    before = read_records(data_root)

    with caplog.at_level(logging.INFO, logger="perceptive.resume"):
        result = CliRunner().invoke(cli, ["run", "--resume", "-c", str(config)])

    assert result.exit_code == 0, result.output
    assert "Nothing to run" in caplog.text
    assert "reuse  modelling/train" in caplog.text and record["save_version"] in caplog.text
    assert len(read_records(data_root)) == len(before)  # no run started


def test_classifier_change_reruns_only_modelling_and_prediction(baseline):
    data_root, base = baseline
    plan, record = resume(data_root, classifier={"n_estimators": 10})

    expected = nodes_of("modelling", "prediction")
    assert set(plan.to_run) == expected
    assert set(plan.reused.values()) == {base["save_version"]}
    assert "classifier.n_estimators (20 -> 10)" in next(
        s.reason for s in plan.steps if s.node == "train"
    )
    assert set(record["nodes"]) == expected
    assert saved_by(record) == outputs_of(expected)  # nothing upstream was written again
    assert record["datasets"]["samples"]["loaded"] == base["save_version"]
    assert record["datasets"]["features_cube"]["loaded"] == base["save_version"]
    metrics = read_provenance_params(data_root, record["save_version"])
    assert metrics["classifier"]["n_estimators"] == 10
    new_map = lulc_pixels(data_root, record["save_version"])
    assert not np.array_equal(new_map, lulc_pixels(data_root, base["save_version"]))


def read_provenance_params(data_root: Path, version: str) -> dict:
    path = data_root / "08_reporting" / "validation_metrics.json" / version
    return json.loads((path / "validation_metrics.json").read_text())["provenance"]["parameters"]


def test_upstream_parameter_change_reruns_from_feature_engineering(baseline):
    data_root, base = baseline
    plan, record = resume(data_root, date_grid={"step_days": 32})

    reused = INGESTION | {"compute_masks"}  # masks do not depend on the date grid
    assert set(plan.reused) == reused
    assert set(plan.to_run) == ALL_NODES - reused
    assert "date_grid.step_days (16 -> 32)" in next(
        s.reason for s in plan.steps if s.node == "compute_features"
    )
    assert set(record["nodes"]) == ALL_NODES - reused
    assert saved_by(record) == outputs_of(ALL_NODES - reused)
    assert record["datasets"]["masks_cube"]["loaded"] == base["save_version"]

    # the resumed run's outputs are found again: the same change now runs nothing
    again = plan_for_run(PROJECT, runtime_params=params(data_root, date_grid={"step_days": 32}))
    assert again.to_run == []
    assert again.reused["compute_features"] == record["save_version"]
    assert again.reused["compute_masks"] == base["save_version"]


def kedro_command(tmp_path: Path, runtime: dict) -> tuple[list[str], dict]:
    """``kedro run`` of the project with these parameters (a run config file in ``tmp_path``),
    and the environment to start it in as a subprocess (inherited, so PYTHONPATH too)."""
    config = tmp_path / "run.yml"
    config.write_text(yaml.safe_dump({"run": {"params": runtime}}))
    kedro = [str(Path(sys.executable).parent / "kedro"), "run", "-c", str(config)]
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "COLUMNS": "250"}  # whole log lines
    return kedro, env


def test_resume_after_kill_finishes_like_an_uninterrupted_run(baseline, tmp_path):
    """``kedro run`` killed with SIGKILL as soon as its record shows ingestion and masks
    finished, then ``kedro run --resume`` (both real subprocesses): ingestion is reused, the
    rest runs, and the map is the one the uninterrupted baseline run made with the same
    parameters, pixel for pixel."""
    reference_root, reference = baseline
    data_root = tmp_path / "data"
    kedro, env = kedro_command(tmp_path, params(data_root))

    child = subprocess.Popen(
        kedro, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def feature_engineering_under_way() -> bool:  # ingestion and masks done, by the record
        records = read_records(data_root)
        nodes = records[0]["nodes"] if records else {}
        done = ("import_reference_labels", "compute_masks")
        return all(nodes.get(n, {}).get("outcome") == "finished" for n in done)

    kill_when(child, feature_engineering_under_way, 240, "feature_engineering")
    (killed,) = read_records(data_root)
    assert killed["outcome"] == "running"  # its record never got its end
    version = killed["save_version"]
    for name, entry in killed["nodes"].items():  # "finished" only once the outputs are saved
        if entry["outcome"] == "finished":
            assert all(killed["datasets"].get(o, {}).get("saved") for o in outputs_of({name}))
    reused = INGESTION | {"compute_masks"}
    if (data_root / f"04_feature/features_cube.zarr/{version}/features_cube.zarr").exists():
        reused.add("compute_features")  # saved just before the kill

    done = subprocess.run(
        [*kedro, "--resume"], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Resume:" in done.stdout + done.stderr

    record = newest_record(data_root)
    assert record["outcome"] == "finished"
    plan = [line for line in (done.stdout + done.stderr).splitlines() if "  run  " in line]
    assert set(record["nodes"]) == ALL_NODES - reused, plan  # the plan says why, if not
    assert saved_by(record) == outputs_of(ALL_NODES - reused)
    assert record["datasets"]["l1c_cube"]["loaded"] == version
    resumed_map = lulc_pixels(data_root, record["save_version"])
    assert np.array_equal(resumed_map, lulc_pixels(reference_root, reference["save_version"]))


@pytest.mark.parametrize(
    ("outcome", "labels_saved"),
    [("running", True), ("finished", True), ("finished", False)],
)
def test_resume_after_kill_between_save_and_record(baseline, tmp_path, outcome, labels_saved):
    """A run killed after ``import_reference_labels`` returned: its record shows the node
    running, or finished as records did before run_record.py waited for the saves, and no
    saved labels. When the labels are on disk their provenance stands in for the record and
    ingestion is reused; when they are not, the node runs, and with it all of ingestion, since
    its input ``source_reference_labels`` lives only in the memory of ``fetch_l1c``'s run."""
    base_root, base = baseline
    version = base["save_version"]
    data_root = tmp_path / "data"
    for folder in ("01_raw", "02_intermediate", "03_primary"):  # ingestion and masks
        shutil.copytree(base_root / folder, data_root / folder)
    if not labels_saved:
        shutil.rmtree(data_root / "01_raw" / "reference_labels.gpkg" / version)
    killed = copy.deepcopy(base)
    done = INGESTION | {"compute_masks"}
    killed.update(outcome="running", finished=None, parameters=None)
    killed["nodes"] = {n: e for n, e in killed["nodes"].items() if n in done}
    killed["nodes"]["import_reference_labels"]["outcome"] = outcome
    killed["datasets"] = {k: v for k, v in killed["datasets"].items() if k in outputs_of(done)}
    del killed["datasets"]["reference_labels"]  # the record was not written after the save
    (data_root / "runs").mkdir()
    (data_root / "runs" / f"{version}.json").write_text(json.dumps(killed))

    plan = plan_for_run(PROJECT, runtime_params=params(data_root))

    reasons = {s.node: s.reason for s in plan.steps}
    if labels_saved:
        assert plan.reused == dict.fromkeys(done, version), plan.summary()
        assert set(plan.to_run) == ALL_NODES - done
    else:
        assert set(plan.to_run) == ALL_NODES, plan.summary()
        assert reasons["import_reference_labels"] == "never finished"  # the cause, kept
        assert "source_reference_labels" in reasons["fetch_l1c"]


# --- kill -9 at other points of a run -----------------------------------------------------------
# Each test kills a real ``kedro run`` with SIGKILL at a point found by polling its record or its
# files, checks what the kill left, runs ``kedro run --resume`` and compares the result with
# the uninterrupted ``baseline`` run's. Where the kill lands a few milliseconds after the point
# is not certain, so each point lists the nodes that may have finished in between; what the
# resumed run must redo is then read from what is whole on disk, and checked to be one of
# those outcomes.


@dataclass
class Killed:
    """A ``kedro run`` killed with SIGKILL, and what it left."""

    runtime: dict
    command: list[str]
    env: dict
    record: dict  # its run record, never ended
    whole: set[str]  # datasets it saved whole
    partials: list[Path]  # the saves the kill interrupted
    reused: set[str]  # the nodes resuming may reuse: their outputs are whole, with provenance

    @property
    def data_root(self) -> Path:
        return Path(self.runtime["data_root"])

    @property
    def version(self) -> str:
        return self.record["save_version"]


def catalog_for(runtime: dict):
    """The catalog of a run with these parameters (loads take the newest versions on disk)."""
    bootstrap_project(PROJECT)
    with KedroSession.create(project_path=PROJECT, runtime_params=runtime) as session:
        return session.load_context().catalog


def versioned_datasets(catalog) -> dict[str, AbstractVersionedDataset]:
    datasets = {name: catalog.get(name) for name in catalog.keys()}
    return {k: v for k, v in datasets.items() if isinstance(v, AbstractVersionedDataset)}


def check_no_partial_is_a_version(catalog, version: str) -> tuple[set[str], list[Path]]:
    """Every dataset's newest version is one the killed run saved whole (its manifest
    verifies, every file and checksum; it loads) or there is none: a ``.partial-*`` save the
    kill interrupted is never taken for a version. Returns the datasets saved whole and the
    partials left."""
    whole, partials = set(), []
    for name, dataset in versioned_datasets(catalog).items():
        final = Path(str(dataset._get_versioned_path(version)))
        partials += sorted(final.parent.glob(".partial-*"))
        try:
            newest = dataset.resolve_load_version()
        except DatasetError:  # no version at all
            newest = None
        assert newest == (version if final.exists() else None), (name, partials)
        if not final.exists():
            continue
        whole.add(name)
        if getattr(dataset, "with_manifest", False):
            assert manifest.verify(final, version=version), name  # False: no manifest
        if isinstance(dataset, MatplotlibDataset):  # save-only: check the PNGs themselves
            for png in [final] if final.is_file() else sorted(final.iterdir()):
                with Image.open(png) as image:
                    image.verify()
        else:
            dataset.load()
    return whole, partials


def whole_nodes(catalog, version: str, whole: set[str]) -> set[str]:
    """The nodes all of whose versioned outputs ``version`` holds whole, each carrying the
    node's provenance (provenance.py): what a resumed run may reuse of a killed one."""
    datasets = versioned_datasets(catalog)
    done = set()
    for link in LINKS:
        for node in importlib.import_module(f"perceptive.pipelines.{link}").create_pipeline().nodes:
            outputs = [o for o in node.outputs if o in datasets]
            if outputs and all(
                o in whole
                and (read_provenance(datasets[o], o, version) or {}).get("node") == node.name
                for o in outputs
            ):
                done.add(node.name)
    return done


def kill_run(tmp_path: Path, runtime: dict, ready, what: str, timeout: float = 240) -> Killed:
    """Start ``kedro run`` with ``runtime`` parameters, SIGKILL it once ``ready(data_root)``
    holds, and check what it left: its record never ended and claims no node whose outputs
    were not saved, and no half-written save is a version (check_no_partial_is_a_version)."""
    data_root = Path(runtime["data_root"])
    command, env = kedro_command(tmp_path, runtime)
    child = subprocess.Popen(
        command, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    kill_when(child, lambda: ready(data_root), timeout, what)
    (record,) = read_records(data_root)
    version = record["save_version"]
    for name, entry in record["nodes"].items():  # "finished" only once the outputs are saved
        if entry["outcome"] == "finished":
            assert all(record["datasets"].get(o, {}).get("saved") for o in outputs_of({name}))
    catalog = catalog_for(runtime)
    whole, partials = check_no_partial_is_a_version(catalog, version)
    reused = whole_nodes(catalog, version, whole)
    if not {"fetch_l1c", "import_reference_labels"} <= reused:
        reused -= INGESTION  # their in-memory hand-overs do not outlive a run: all run again
    assert record["outcome"] == "running" or reused == ALL_NODES  # ended just before the kill
    return Killed(runtime, command, env, record, whole, partials, reused)


def resume_killed(killed: Killed) -> tuple[dict, str]:
    """``kedro run --resume`` after ``killed``: it runs exactly the nodes the killed run did
    not leave whole, reads the others' outputs at the killed run's version, and sweeps the
    killed run's partial saves. Returns its record and its log."""
    data_root, version = killed.data_root, killed.version
    done = subprocess.run(
        [*killed.command, "--resume"],
        cwd=PROJECT, env=killed.env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-6000:]
    assert "Resume:" in log
    record = newest_record(data_root)
    to_run = ALL_NODES - killed.reused
    if not to_run:
        assert "Nothing to run" in log and record["save_version"] == version
        return record, log
    plan = {node: planned(log, node) or ("?", "") for node in ALL_NODES}
    assert {n: step[0] for n, step in plan.items()} == {
        n: "reuse" if n in killed.reused else "run" for n in ALL_NODES
    }, log[-6000:]
    assert all(plan[n][1] == f"version {version}" for n in killed.reused), plan
    assert record["save_version"] != version and record["outcome"] == "finished"
    assert set(record["nodes"]) == to_run
    assert saved_by(record) == outputs_of(to_run)
    for name, entry in record["datasets"].items():  # the reused outputs, at the killed version
        if entry.get("loaded") and not entry.get("saved"):
            assert entry["loaded"] == version, name
    assert not list(data_root.rglob(".partial-*"))  # swept when the resumed run began
    return record, log


def planned(log: str, node: str) -> tuple[str, str] | None:
    """(action, version or reason) of ``node`` in the plan ``kedro run --resume`` logged."""
    for line in log.splitlines():
        if found := re.search(rf"\b(run|reuse|skip)\s+\w+/{node}\s+(.*?)\s*$", line):
            return found[1], found[2]
    return None


def newest_saved(data_root: Path, folder: str) -> Path:
    """The newest version of ``<data_root>/<folder>`` (e.g. ``05_model_input/samples.parquet``)
    on disk: version ids sort by time."""
    name = Path(folder).name
    return max((data_root / folder).glob(f"*/{name}"))


def check_like_the_baseline(data_root: Path, baseline, drop=()) -> None:
    """The newest map and samples equal the uninterrupted baseline run's, pixel for pixel and
    row for row (``drop``: columns only the baseline's source makes). The baseline's are read
    at its version: other tests add newer ones to its data_root."""
    base_root, base = baseline
    version = base["save_version"]
    with rasterio.open(newest_saved(data_root, "07_model_output/lulc_map.tif")) as src:
        assert np.array_equal(src.read(), lulc_pixels(base_root, version))
    samples = pd.read_parquet(newest_saved(data_root, "05_model_input/samples.parquet"))
    expected = pd.read_parquet(
        base_root / f"05_model_input/samples.parquet/{version}/samples.parquet"
    )
    pd.testing.assert_frame_equal(samples, expected.drop(columns=list(drop)))


def record_shows_finished(node: str):
    def ready(data_root: Path) -> bool:
        records = read_records(data_root)
        nodes = records[0]["nodes"] if records else {}
        return nodes.get(node, {}).get("outcome") == "finished"

    return ready


def save_begun(folder: str):
    """Whether a save into ``<data_root>/<folder>`` began: its version folder has an entry
    (first the ``.partial-*`` it is written to)."""

    def ready(data_root: Path) -> bool:
        return any(any(v.iterdir()) for v in (data_root / folder).glob("*/"))

    return ready


#: Kill points: the node; whether the kill comes once the save of its first versioned output
#: has begun ("saving") or once the record shows it finished ("finished"); and the nodes that
#: may have finished too before the SIGKILL landed (the save under way; a node of a few tens
#: of milliseconds after it). Training takes seconds, so no kill point reaches past it.
KILL_POINTS = {
    "sampling: label_raster just saved": ("rasterize_reference", "finished", {"sample_training_pixels"}),
    "sampling: samples being saved": ("sample_training_pixels", "saving", {"sample_training_pixels"}),
    "prediction: prediction_cube being written": ("predict", "saving", {"predict", "make_maps"}),
    "prediction: between predict and make_maps": ("predict", "finished", {"make_maps", "summarise"}),
}  # fmt: skip


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_during_sampling_or_prediction_then_resume_finishes_like_uninterrupted(
    baseline, tmp_path, point
):
    """SIGKILL at ``point``, then ``kedro run --resume``: every node the killed run finished
    (all its outputs whole on disk) is reused, the rest runs, and the map and the samples equal
    the uninterrupted baseline's. An interrupted save is left as a ``.partial-*`` that no load
    takes for a version, and the resumed run removes it."""
    base_root, base = baseline
    node, when, maybe = KILL_POINTS[point]
    order = list(base["nodes"])  # the order the nodes run in (Kedro's is deterministic)
    must = set(order[: order.index(node) + (when == "finished")])
    first_output = next(o for o in outputs_of({node}) if o in base["datasets"])
    folder = Path(base["datasets"][first_output]["path"]).relative_to(base_root.resolve())
    ready = record_shows_finished(node) if when == "finished" else save_begun(str(folder))

    killed = kill_run(tmp_path, params(tmp_path / "data"), ready, point)
    partials = [p.relative_to(killed.data_root).as_posix() for p in killed.partials]
    outcome = (
        f"{point}: also reused {sorted(killed.reused - must)} of {sorted(maybe)}; saved whole "
        f"{sorted(killed.whole & outputs_of(maybe))} of {sorted(outputs_of(maybe))}; partials "
        f"{partials}"
    )
    outcomes.info(outcome)
    assert must <= killed.reused <= must | maybe, outcome
    if when == "saving":  # the save the kill interrupted, or whole if it finished first
        left = {p.parent.parent.name for p in killed.partials}
        assert first_output in killed.whole or folder.name in left, outcome

    _, resumed_log = resume_killed(killed)
    first = next(n for n in order if n not in killed.reused)  # where the killed run stopped
    assert planned(resumed_log, first) == ("run", "never finished")
    check_like_the_baseline(killed.data_root, baseline)


def test_kill_during_an_arms_prediction_then_resume_sweeps_the_half_written_cube(
    baseline, tmp_path
):
    """``kedro run --pipelines arms`` (modelling and prediction once per classifier, under
    namespaces) killed while the ``lgbm`` arm writes its prediction_cube, then resumed: the
    resumed run removes the interrupted save (the sweep used to look only three folders deep,
    and the arms' datasets sit at ``<layer>/arms/<arm>/<dataset>/<version>``, so it stayed for
    good), runs what the killed run did not finish, and the ``lgbm`` arm, given the baseline's
    classifier, maps exactly as the baseline did."""
    base_root, base = baseline
    data_root = tmp_path / "data"
    for folder in ("04_feature/features_cube.zarr", "05_model_input/samples.parquet"):
        version = base["save_version"]  # the arms' inputs as the baseline made them
        shutil.copytree(base_root / folder / version, data_root / folder / version)
    arms = {"lgbm": base["parameters"]["classifier"], "rf": {"n_estimators": 20}}
    runtime = params(data_root, arms={arm: {"classifier": c} for arm, c in arms.items()})
    command, env = kedro_command(tmp_path, runtime)
    command += ["--pipelines", "arms"]
    child = subprocess.Popen(
        command, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    folder = "07_model_output/arms/lgbm/prediction_cube.zarr"
    kill_when(child, lambda: save_begun(folder)(data_root), 240, "lgbm's prediction_cube")
    (killed,) = read_records(data_root)
    cube = data_root / folder / killed["save_version"] / "prediction_cube.zarr"
    partials = list(data_root.rglob(".partial-*"))
    assert partials or cube.exists()  # the write interrupted, or done just before the kill
    finished = {n for n, entry in killed["nodes"].items() if entry["outcome"] == "finished"}

    done = subprocess.run(
        [*command, "--resume"], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = newest_record(data_root)
    assert record["outcome"] == "finished"
    whole = {"lgbm.predict"} if cube.exists() else set()  # whole without the record knowing
    arms_nodes = {
        n.name for n in importlib.import_module("perceptive.pipelines.arms").create_pipeline().nodes
    }
    assert set(record["nodes"]) == arms_nodes - finished - whole
    assert not list(data_root.rglob(".partial-*"))  # swept when the resumed run began
    with rasterio.open(newest_saved(data_root, "07_model_output/arms/lgbm/lulc_map.tif")) as src:
        assert np.array_equal(src.read(), lulc_pixels(base_root, base["save_version"]))


#: The small AOI is 256 x 256 px in tiles of 128 px.
TILES = 4


@pytest.fixture(scope="module")
def l1c_products(baseline, tmp_path_factory) -> dict:
    """``source`` and ``reference`` parameters that read the baseline's own L1C cube and
    labels from files, with the ``local_files`` source: one 13-band GeoTIFF per acquisition
    (with its sensing time and sun angles) and the labels' GeoPackage. That source reads tile
    by tile and stages each finished tile (sources/tiled.py); over these files it makes the
    baseline's cube, and so its map, exactly."""
    base_root, base = baseline
    version = base["save_version"]
    folder = tmp_path_factory.mktemp("products")
    store = base_root / "02_intermediate/l1c_cube.zarr" / version / "l1c_cube.zarr"
    cube = xr.open_zarr(store, consolidated=False)
    profile = {
        "driver": "GTiff", "count": cube.sizes["band"], "dtype": "uint16", "nodata": 0,
        "height": cube.sizes["y"], "width": cube.sizes["x"], "crs": cube.rio.crs,
        "transform": cube.rio.transform(), "compress": "deflate",
    }  # fmt: skip
    bands = cube["bands"].values  # at once: a chunk holds every date
    zenith, azimuth = cube["sun_zenith"].values, cube["sun_azimuth"].values
    for i, time in enumerate(pd.DatetimeIndex(cube["time"].values)):
        with rasterio.open(folder / f"L1C_{time:%Y%m%dT%H%M%S}.tif", "w", **profile) as dst:
            dst.write(bands[i])
            sun = {"SUN_ZENITH": str(zenith[i]), "SUN_AZIMUTH": str(azimuth[i])}
            dst.update_tags(SENSING_TIME=time.isoformat(), **sun)
    labels = folder / "labels" / "reference_labels.gpkg"
    labels.parent.mkdir()
    shutil.copy(base_root / "01_raw/reference_labels.gpkg" / version / labels.name, labels)
    return {
        "source": {"method": "local_files", "folder": str(folder), "radiometric_offset": "none"},
        "reference": {"file": str(labels)},
    }


def test_kill_while_fetch_l1c_stages_tiles_then_resume_reads_only_the_missing_ones(
    baseline, l1c_products, tmp_path
):
    """SIGKILL once ``fetch_l1c`` staged its first tile, then ``kedro run --resume``: nothing
    is reused (ingestion never finished, and its in-memory hand-overs died with the run), but
    ``fetch_l1c`` reads only the tiles the killed run had not staged; the cube, the map and the
    samples equal the baseline's (which read the same data uninterrupted)."""
    base_root, base = baseline
    data_root = tmp_path / "data"
    staging = data_root / "01_raw" / "staging"

    def staged() -> list[str]:
        return sorted(p.name for p in staging.glob("local_files-*.zarr.done/*"))

    killed = kill_run(
        tmp_path, params(data_root, **l1c_products), lambda _: staged(), "a staged tile"
    )
    kept = len(staged())
    assert 1 <= kept < TILES  # a tile takes seconds: the kill lands long before the next one
    assert killed.reused == set()
    assert "l1c_cube" not in killed.whole and killed.whole <= {"aoi_tiles"}

    record, resumed_log = resume_killed(killed)
    assert set(record["nodes"]) == ALL_NODES
    assert planned(resumed_log, "fetch_l1c") == ("run", "never finished")
    assert planned(resumed_log, "define_aoi") == (
        "run", "in-memory output 'aoi_grid' needed by fetch_l1c"
    )  # fmt: skip
    text = " ".join(resumed_log.split())  # log lines as one, wrapped or not
    read = re.search(rf"local_files: (\d+) of {TILES} tiles already in .*?the other (\d+)", text)
    assert read and read.groups() == (str(kept), str(TILES - kept)), resumed_log[-6000:]
    assert len(staged()) == TILES
    version = record["save_version"]
    cube = data_root / f"02_intermediate/l1c_cube.zarr/{version}/l1c_cube.zarr"
    base_cube = base_root / f"02_intermediate/l1c_cube.zarr/{base['save_version']}/l1c_cube.zarr"
    cube, expected = (xr.open_zarr(c, consolidated=False) for c in (cube, base_cube))
    assert np.array_equal(cube["bands"].values, expected["bands"].values)
    check_like_the_baseline(data_root, baseline, drop=["true_label"])  # the demo's truth
