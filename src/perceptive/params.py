"""The parameters of every pipeline, typed: one schema per pipeline, checked before any work.

Values live in ``conf/base/parameters_<pipeline>.yml`` (the one place each is set; a link's
options default to its function's signature, see :mod:`perceptive.eo.links`). The project's
config loader validates the merged parameters against :class:`ProjectParameters` when a run
starts, so a typo, a wrong type, an out-of-range value or an unknown method stops the run
before its first node; nodes then receive these models (Kedro builds them from the node's
type hints).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from perceptive.eo import (
    classifier,
    cloud_masking,
    interpolation,
    postprocessing,
    sampling,
    shadows,
)
from perceptive.eo.grid import Grid, aoi_geometry, grid_for_aoi
from perceptive.eo.indices import check_feature_names
from perceptive.eo.links import Registry
from perceptive.sources import METHODS as SOURCES


def link(registry: Registry):
    """The type of a link parameter: ``{method: <name>, <options>}`` checked by its registry
    (unknown method or option refused, defaults filled in)."""
    return Annotated[dict[str, Any], AfterValidator(registry.validate)]


SourceSpec = link(SOURCES)
CloudMaskingSpec = link(cloud_masking.METHODS)
CloudShadowsSpec = link(shadows.METHODS)
InterpolationSpec = link(interpolation.METHODS)
ClassifierSpec = link(classifier.METHODS)
SamplingSchemeSpec = link(sampling.METHODS)
PostprocessingSpec = link(postprocessing.METHODS)


class Params(BaseModel):
    """Unknown keys are refused, values are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- ingestion


class Aoi(Params):
    """Exactly one of ``bbox`` [minx, miny, maxx, maxy], ``geometry`` (GeoJSON) or ``file``
    (any vector file), with the ``crs`` of the coordinates."""

    KINDS: ClassVar[tuple[str, ...]] = ("bbox", "geometry", "file")

    bbox: tuple[float, float, float, float] | None = None
    geometry: dict[str, Any] | None = None
    file: str | None = None
    crs: str = "EPSG:4326"

    @model_validator(mode="after")
    def _readable(self) -> Aoi:
        aoi_geometry(self.model_dump())  # raises GridError (a ValueError) naming the fix
        return self

    def grid(self, resolution: float) -> Grid:
        """The AOI's pixel grid at ``resolution`` m, in the UTM zone of its centre."""
        return grid_for_aoi(*aoi_geometry(self.model_dump()), resolution)


#: A source code as text (``211`` in YAML and ``"211"`` are the same code).
SourceCode = Annotated[str, BeforeValidator(str)]
LegendId = Annotated[int, Field(ge=0, le=255)]


class Reference(Params):
    """Reference labels: ``file`` null takes the source's own labels; otherwise a vector file
    of labelled polygons whose ``class_column`` holds the classes, or a raster of class codes
    on any grid (``class_column`` unused). ``class_mapping`` ``{source code: legend id}``
    turns the source's own codes into legend ids (null: they are legend ids already)."""

    file: str | None
    class_column: str
    class_mapping: dict[SourceCode, LegendId] | None

    @field_validator("file")
    @classmethod
    def _exists(cls, file: str | None) -> str | None:
        if file is not None and not Path(file).is_file():
            raise ValueError(
                f"no file {file!r} (from {Path.cwd()}); give the path of a GeoPackage, GeoJSON "
                "or Shapefile of labelled polygons, or of a GeoTIFF of class codes, or null for "
                "the source's own labels."
            )
        return file


class IngestionParameters(Params):
    source: SourceSpec
    aoi: Aoi
    time_interval: tuple[dt.date, dt.date]
    resolution: Annotated[float, Field(gt=0)]
    tile_size: Annotated[int, Field(ge=16)]
    max_cube_gb: Annotated[float, Field(gt=0)]
    reference: Reference

    @field_validator("time_interval")
    @classmethod
    def _interval_in_order(cls, interval: tuple[dt.date, dt.date]) -> tuple[dt.date, dt.date]:
        start, end = interval
        if start > end:
            raise ValueError(f"reversed: start {start} is after end {end}; swap the two dates.")
        return interval


# --------------------------------------------------------------------------- feature_engineering


class DateGrid(Params):
    """The times every pixel's time series is resampled onto: every ``step_days`` from the
    start of the cube's time interval (``times: grid``) at midnight, or at the first
    acquisition's time of day (eo-learn's convention); or the kept acquisitions' own times
    (``times: acquisitions``: cloudy observations filled, nothing resampled)."""

    step_days: Annotated[int, Field(ge=1)]
    times: Literal["grid", "acquisitions"] = "grid"
    time_of_day: Literal["midnight", "first_acquisition"] = "midnight"


class FeatureEngineeringParameters(Params):
    cloud_masking: CloudMaskingSpec
    cloud_shadows: CloudShadowsSpec
    min_valid_fraction: Annotated[float, Field(ge=0, le=1)]
    features: Annotated[list[str], AfterValidator(check_feature_names)]
    date_grid: DateGrid
    interpolation: InterpolationSpec
    quicklook_date: dt.date | None


# --------------------------------------------------------------------------- sampling


class LegendClass(Params):
    id: Annotated[int, Field(ge=0, le=255)]
    name: str
    colour: Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")]


def _unique_ids(classes: list[LegendClass] | None) -> list[LegendClass] | None:
    ids = [c.id for c in classes or ()]
    if len(set(ids)) != len(ids):
        raise ValueError(f"legend class ids must be unique, got {ids}.")
    return classes


class Sampling(Params):
    scheme: SamplingSchemeSpec
    n_samples: Annotated[int, Field(ge=2)]
    erosion_radius: Annotated[int, Field(ge=0)]
    block_size: Annotated[int, Field(ge=2)]
    validation_fraction: Annotated[float, Field(gt=0, lt=1)]
    test_fraction: Annotated[float, Field(ge=0, lt=1)]
    n_folds: Annotated[int, Field(ge=2)]
    seed: Annotated[int, Field(ge=0)]
    split_column: str | None  # the reference labels' own train/validation/test per polygon

    @model_validator(mode="after")
    def _room_for_training(self) -> Sampling:
        if self.validation_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"validation_fraction + test_fraction = "
                f"{self.validation_fraction + self.test_fraction:g} leaves nothing to train on; "
                "keep their sum below 1 (e.g. 0.2 and 0.1)."
            )
        return self


class SamplingParameters(Params):
    legend: Annotated[list[LegendClass] | None, AfterValidator(_unique_ids)]
    sampling: Sampling


# --------------------------------------------------------------------------- modelling


class Evaluation(Params):
    """How accuracy is assessed: ``n_bootstrap`` resamples of the spatial blocks for the 95 %
    intervals; ``cross_validation`` also trains once per ``fold`` of the samples (spatial
    k-fold) and reports the mean and spread."""

    n_bootstrap: Annotated[int, Field(ge=50)]
    cross_validation: bool


class EarlyStopping(Params):
    """LightGBM chooses its number of rounds on a held-out ``holdout_fraction`` of the
    training blocks (drawn with ``seed``): it stops after ``stopping_rounds`` rounds without
    improvement, then is refitted on every training block (see
    :class:`perceptive.eo.classifier.EarlyStopping`)."""

    enabled: bool
    holdout_fraction: Annotated[float, Field(gt=0, lt=1)]
    stopping_rounds: Annotated[int, Field(ge=1)]
    seed: Annotated[int, Field(ge=0)]

    def settings(self) -> classifier.EarlyStopping | None:
        """What training needs, or None when disabled."""
        if not self.enabled:
            return None
        return classifier.EarlyStopping(self.holdout_fraction, self.stopping_rounds, self.seed)


#: The arms of the ``arms`` pipeline (its Kedro namespaces), each set in ``arms.<name>``.
ARMS = ("lgbm", "rf")


class Arm(Params):
    """One arm of the ``arms`` pipeline: its own classifier, the other settings shared."""

    classifier: ClassifierSpec


class ModellingParameters(Params):
    classifier: ClassifierSpec
    evaluation: Evaluation
    early_stopping: EarlyStopping
    arms: dict[str, Arm]

    @field_validator("arms")
    @classmethod
    def _one_per_namespace(cls, value: dict[str, Arm]) -> dict[str, Arm]:
        if set(value) != set(ARMS):
            raise ValueError(
                f"the arms pipeline has the namespaces {list(ARMS)}, so `arms` sets exactly "
                f"those, not {sorted(value)} (perceptive.params.ARMS names them)."
            )
        return value

    @field_validator("early_stopping")
    @classmethod
    def _classifier_can_stop(cls, value: EarlyStopping, info) -> EarlyStopping:
        method = (info.data.get("classifier") or {}).get("method")  # absent if it was invalid
        if value.enabled and method and not classifier.supports_early_stopping(method):
            raise ValueError(
                f"enabled, but classifier {method!r} cannot stop early (only LightGBM has "
                "boosting rounds to stop); set early_stopping.enabled to false or choose "
                "classifier method lightgbm."
            )
        return value


# --------------------------------------------------------------------------- prediction


class CompiledModel(Params):
    """Predict with a compiled LightGBM model when it matches plain LightGBM on a sample of
    the map's pixels. ``engine``: ``quickscorer`` (default; bit vectors compiled by numba,
    built in about a second, trees of up to 64 leaves; a model it cannot score falls back to
    tl2cgen) or ``tl2cgen`` (C code, tens of seconds per model, cached in ``cache``, one per
    model). ``auto`` compiles for maps of at least ``auto_from_mpx`` million pixels: by
    default any map with quickscorer, 4 Mpx with tl2cgen, whose compiling only a large map
    wins back."""

    enabled: bool | Literal["auto"]
    cache: str
    engine: Literal["quickscorer", "tl2cgen"] = "quickscorer"
    auto_from_mpx: Annotated[float, Field(ge=0)] | None = None

    def wanted(self, n_pixels: int) -> bool:
        """Whether to compile for a map of ``n_pixels``."""
        if self.enabled == "auto":
            return n_pixels >= self.auto_threshold_mpx * 1e6
        return self.enabled

    @property
    def auto_threshold_mpx(self) -> float:
        """``auto_from_mpx``, or the engine's default: 0 for quickscorer, 4 for tl2cgen."""
        if self.auto_from_mpx is not None:
            return self.auto_from_mpx
        return 0.0 if self.engine == "quickscorer" else 4.0


class PredictionParameters(Params):
    postprocessing: PostprocessingSpec
    probabilities: bool  # also save the per-class probabilities (Zarr, one layer per class)
    compiled_model: CompiledModel


# --------------------------------------------------------------------------- engine


#: A dask scheduler's address: ``protocol://...`` or ``host:port`` (tcp://10.0.0.5:8786,
#: localhost:8786, inproc://10.0.0.5/1234/1).
SCHEDULER_ADDRESS = r"^(?:[a-z][a-z0-9+.-]*://\S+|\S+:\d+)$"


def _scheduler_address(value: str | None) -> str | None:
    if value is not None and not re.match(SCHEDULER_ADDRESS, value):
        raise ValueError(
            f"not a scheduler address: {value!r}; give [protocol://]host:port, e.g. "
            "tcp://10.0.0.5:8786 (the address `dask scheduler` prints)."
        )
    return value


def _memory_limit(value: str | None) -> str | None:
    if value is None or value == "auto":
        return value
    from dask.utils import parse_bytes

    try:
        parse_bytes(value)
    except (ValueError, TypeError):
        raise ValueError(
            f"not a size: {value!r}; give one such as 4GiB or 2000MB, auto (the machine's "
            "memory shared by the workers) or null (no limit)."
        ) from None
    return value


class Engine(Params):
    """Where dask computes the lazy work (see :mod:`perceptive.engine`): ``threads`` (dask's
    threaded scheduler), ``local_cluster`` (a LocalCluster of ``n_workers`` processes of
    ``threads_per_worker`` threads and ``memory_limit`` each, ``dashboard`` optional, started
    for the run) or ``address`` (the running scheduler at ``address``)."""

    scheduler: Literal["threads", "local_cluster", "address"] = "threads"
    n_workers: Annotated[int, Field(ge=1)] = 2
    threads_per_worker: Annotated[int, Field(ge=1)] = 1
    memory_limit: Annotated[str | None, AfterValidator(_memory_limit)] = "4GiB"
    address: Annotated[str | None, AfterValidator(_scheduler_address)] = None
    dashboard: bool = False

    @model_validator(mode="after")
    def _address_iff_address(self) -> Engine:
        if self.scheduler == "address" and self.address is None:
            raise ValueError(
                "scheduler is address but no address is given; set dask.address to the "
                "scheduler's address (e.g. tcp://10.0.0.5:8786), or choose scheduler threads "
                "or local_cluster."
            )
        if self.scheduler != "address" and self.address is not None:
            raise ValueError(
                f"address {self.address!r} is only used with scheduler: address (scheduler "
                f"is {self.scheduler}); set dask.scheduler to address, or dask.address to null."
            )
        return self


# --------------------------------------------------------------------------- all together


class ProjectParameters(
    IngestionParameters,
    FeatureEngineeringParameters,
    SamplingParameters,
    ModellingParameters,
    PredictionParameters,
):
    """Every pipeline's parameters, plus the checks that need several of them."""

    data_root: str | None = None  # only ever given at run time (--params data_root=...)
    dask: Engine = Engine()  # the dask scheduler (parameters_engine.yml)

    def conflicts(self) -> list[tuple[str, str]]:
        """(key, problem) for settings that are valid alone but not together with the AOI."""
        grid = self.aoi.grid(self.resolution)
        found = []
        radius = self.sampling.erosion_radius
        if 2 * radius + 1 > min(grid.width, grid.height):
            found.append((
                "sampling.erosion_radius",
                f"a {2 * radius + 1} px kernel is larger than the AOI ({grid.width} x "
                f"{grid.height} px), so every label would be eroded; use 1 or 2 px at 10 m.",
            ))  # fmt: skip
        block = self.sampling.block_size
        if math.ceil(grid.width / block) * math.ceil(grid.height / block) < 2:
            found.append((
                "sampling.block_size",
                f"one block covers the whole AOI ({grid.width} x {grid.height} px), so nothing "
                f"can be held out for validation; use at most {max(grid.width, grid.height) // 2}.",
            ))  # fmt: skip
        if self.cloud_masking["method"] == "s2cloudless":
            found += _s2cloudless_conflicts(self.cloud_masking, grid)
        if self.reference.class_mapping:
            from perceptive.eo.legend import DEFAULT_LEGEND

            legend = self.legend if self.legend is not None else DEFAULT_LEGEND
            ids = {c.id for c in legend}
            unknown = sorted({v for v in self.reference.class_mapping.values() if v} - ids)
            if unknown:
                found.append((
                    "reference.class_mapping",
                    f"maps codes to {unknown}, which the legend lacks (its ids are "
                    f"{sorted(ids)}; 0 leaves a code unlabelled); fix the mapping or add the "
                    "classes to `legend`.",
                ))  # fmt: skip
        return found


def _s2cloudless_conflicts(options: Mapping[str, Any], grid: Grid) -> list[tuple[str, str]]:
    processing = options["processing_resolution"]
    try:
        cloud_masking.processing_factor(processing, grid.resolution)
    except ValueError as err:
        return [("cloud_masking.processing_resolution", str(err))]
    radii = {}  # the option that sets each radius (in metres when given), and its pixels
    for count, metres in (("average_over", "average_over_m"), ("dilation_size", "dilation_m")):
        if options.get(metres) is not None:
            radii[metres] = cloud_masking.radius_pixels(options[metres], processing)
        else:
            radii[count] = options[count]
    pixels = sum(radii.values())
    extent_m = min(grid.width, grid.height) * grid.resolution
    if 2 * pixels * processing > extent_m:
        return [(
            f"cloud_masking.{max(radii, key=radii.get)}",
            f"average_over + dilation_size = {pixels} pixels of {processing:g} m span "
            f"{2 * pixels * processing:g} m, more than the AOI ({extent_m:g} m across); lower "
            "them or the processing_resolution.",
        )]  # fmt: skip
    return []
