import json

import numpy as np
import pytest
from sklearn import metrics

from perceptive.eo.accuracy import (
    area_estimates,
    block_bootstrap_ci,
    classification_report,
    mcnemar,
)
from perceptive.eo.legend import DEFAULT_LEGEND


def two_class_case():
    # confusion (rows reference, cols predicted), classes 1 and 2: [[20, 5], [10, 15]]
    y_true = np.array([1] * 25 + [2] * 25, dtype=np.uint8)
    y_pred = np.array([1] * 20 + [2] * 5 + [1] * 10 + [2] * 15, dtype=np.uint8)
    return y_true, y_pred


def test_hand_computed_two_class():
    report = classification_report(*two_class_case())
    # po = 0.7, pe = 0.5*0.6 + 0.5*0.4 = 0.5, kappa = 0.2 / 0.5
    assert report["overall_accuracy"] == pytest.approx(0.7)
    assert report["kappa"] == pytest.approx(0.4)
    f1_cult = 2 * (20 / 30) * 0.8 / (20 / 30 + 0.8)  # 0.72727
    f1_forest = 2 * 0.75 * 0.6 / 1.35  # 0.66667
    assert report["per_class"]["cultivated land"] == pytest.approx(
        {"id": 1, "precision": 20 / 30, "recall": 0.8, "f1": f1_cult, "support": 25}
    )
    assert report["per_class"]["forest"]["precision"] == pytest.approx(0.75)
    assert report["macro_f1"] == pytest.approx((f1_cult + f1_forest) / 2)
    assert report["weighted_f1"] == pytest.approx((f1_cult + f1_forest) / 2)
    assert report["confusion_matrix"] == {
        "labels": [1, 2],
        "names": ["cultivated land", "forest"],
        "matrix": [[20, 5], [10, 15]],
        "row_normalised": [[0.8, 0.2], [0.4, 0.6]],  # 20/25, 5/25; 10/25, 15/25
    }
    assert report["n_samples"] == 50
    assert report["majority_class_share"] == pytest.approx(0.5)
    json.dumps(report)  # serialisable, no numpy scalars


def test_weighted_differs_from_macro_and_majority_share():
    y_true = np.array([5] * 8 + [8] * 2)
    y_pred = np.array([5] * 8 + [5, 8])
    report = classification_report(y_true, y_pred, DEFAULT_LEGEND)
    assert report["majority_class_share"] == pytest.approx(0.8)
    assert report["overall_accuracy"] == pytest.approx(0.9)
    # water: P 8/9, R 1, F1 16/17; artificial: P 1, R 0.5, F1 2/3
    assert report["macro_f1"] == pytest.approx((16 / 17 + 2 / 3) / 2)
    assert report["weighted_f1"] == pytest.approx(0.8 * 16 / 17 + 0.2 * 2 / 3)
    assert list(report["per_class"]) == ["water", "artificial surface"]


def test_predicted_only_class_and_unknown_id():
    report = classification_report([1, 1, 2], [1, 42, 2])
    assert report["confusion_matrix"]["labels"] == [1, 2, 42]
    assert report["per_class"]["class 42"]["support"] == 0
    assert report["per_class"]["class 42"]["precision"] == 0.0


def test_single_class_kappa_is_json_null():
    report = classification_report([3, 3, 3], [3, 3, 3])
    assert report["overall_accuracy"] == 1.0
    assert report["kappa"] is None
    assert "NaN" not in json.dumps(report)


def test_block_bootstrap_ci():
    y_true, y_pred = two_class_case()
    groups = np.arange(50) // 5
    report = classification_report(y_true, y_pred, groups=groups)
    low, high = report["overall_accuracy_ci95"]
    assert low < 0.7 < high
    assert 0 <= low and high <= 1
    assert report["n_groups"] == 10
    # perfect blocks → degenerate interval
    assert block_bootstrap_ci(np.ones(20, bool), np.arange(20) // 4) == (1.0, 1.0)


def test_errors():
    with pytest.raises(ValueError, match="empty"):
        classification_report([], [])
    with pytest.raises(ValueError, match="differ in length"):
        classification_report([1, 2], [1])


# --------------------------------------------------------------------------- against sklearn


def test_metrics_equal_scikit_learns_on_a_small_case():
    rng = np.random.default_rng(3)
    y_true = rng.choice([1, 2, 5, 8], size=300, p=[0.5, 0.3, 0.15, 0.05])
    y_pred = np.where(rng.uniform(size=300) < 0.75, y_true, rng.choice([1, 2, 5, 8], size=300))
    report = classification_report(y_true, y_pred)
    labels = [1, 2, 5, 8]
    assert report["overall_accuracy"] == pytest.approx(metrics.accuracy_score(y_true, y_pred))
    assert report["kappa"] == pytest.approx(metrics.cohen_kappa_score(y_true, y_pred))
    for average in ("macro", "weighted"):
        expected = metrics.f1_score(y_true, y_pred, labels=labels, average=average)
        assert report[f"{average}_f1"] == pytest.approx(expected)
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=labels
    )
    per_class = [report["per_class"][name] for name in report["confusion_matrix"]["names"]]
    assert [c["precision"] for c in per_class] == pytest.approx(precision)
    assert [c["recall"] for c in per_class] == pytest.approx(recall)
    assert [c["f1"] for c in per_class] == pytest.approx(f1)
    assert [c["support"] for c in per_class] == support.tolist()
    matrix = metrics.confusion_matrix(y_true, y_pred, labels=labels)
    assert report["confusion_matrix"]["matrix"] == matrix.tolist()
    normalised = metrics.confusion_matrix(y_true, y_pred, labels=labels, normalize="true")
    np.testing.assert_allclose(report["confusion_matrix"]["row_normalised"], normalised)


def test_every_metric_gets_a_block_bootstrap_interval_around_it():
    rng = np.random.default_rng(0)
    y_true = rng.choice([1, 2, 3], size=2000)
    y_pred = np.where(rng.uniform(size=2000) < 0.8, y_true, rng.choice([1, 2, 3], size=2000))
    groups = np.arange(2000) // 50  # 40 blocks
    report = classification_report(y_true, y_pred, groups=groups, n_bootstrap=300)
    for key in ("overall_accuracy", "kappa", "macro_f1", "weighted_f1"):
        low, high = report[f"{key}_ci95"]
        assert low < report[key] < high
        assert high - low < 0.1  # 2000 pixels in 40 blocks: a few points, not a blur
    for entry in report["per_class"].values():
        for key in ("precision", "recall", "f1"):
            low, high = entry[f"{key}_ci95"]
            assert low < entry[key] < high
    cm = report["confusion_matrix"]
    low, high = (np.array(m) for m in cm["matrix_ci95"])
    assert (low <= np.array(cm["matrix"])).all() and (np.array(cm["matrix"]) <= high).all()
    low, high = (np.array(m) for m in cm["row_normalised_ci95"])
    assert (low <= np.array(cm["row_normalised"]) + 1e-12).all()
    assert (np.array(cm["row_normalised"]) <= high + 1e-12).all()
    assert report["n_groups"] == 40 and report["warnings"] == []
    json.dumps(report)


def test_the_interval_is_wider_when_fewer_blocks_hold_the_pixels():
    rng = np.random.default_rng(1)
    y_true = rng.choice([1, 2], size=4000)
    block_accuracy = np.repeat(rng.choice([0.5, 1.0], size=200), 20)  # blocks differ
    y_pred = np.where(rng.uniform(size=4000) < block_accuracy, y_true, 3 - y_true)

    def width(groups):
        low, high = classification_report(y_true, y_pred, groups=groups)["overall_accuracy_ci95"]
        return high - low

    pixels_as_blocks = width(np.arange(4000))
    true_blocks = width(np.arange(4000) // 20)
    assert true_blocks > 2 * pixels_as_blocks  # correlated pixels: a pixel bootstrap lies


def test_few_blocks_give_a_warning():
    y_true, y_pred = two_class_case()
    report = classification_report(y_true, y_pred, groups=np.arange(50) // 25)  # 2 blocks
    assert report["n_groups"] == 2
    assert "only 2 spatial block(s)" in report["warnings"][0]


def test_a_mappable_class_without_reference_pixels_is_listed():
    report = classification_report([1, 1, 2, 2], [1, 1, 2, 1], classes=[1, 2, 7])
    assert report["classes_without_reference"] == ["tundra"]
    assert report["per_class"]["tundra"]["support"] == 0
    assert report["confusion_matrix"]["labels"] == [1, 2, 7]


# --------------------------------------------------------------------------- Olofsson et al. 2014

OLOFSSON_CLASSES = ["deforestation", "forest gain", "stable forest", "stable non-forest"]
#: Sample counts, rows = map class, columns = reference class (Olofsson et al. 2014, table 8).
OLOFSSON_MATRIX = [[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]]
#: Mapped area in 30 m Landsat pixels, converted to ha (0.09 ha a pixel).
OLOFSSON_PIXELS = [200_000, 150_000, 3_200_000, 6_450_000]


def test_area_estimates_reproduce_olofsson_2014_worked_example():
    """Olofsson, Foody, Herold, Stehman, Woodcock, Wulder (2014), "Good practices for
    estimating area and assessing accuracy of land change", Remote Sensing of Environment
    148, 42-57, section 5 (table 8 and the estimates printed on p. 54).

    The sample counts and mapped pixel counts were read from the worked example as encoded
    in the R package ``mapaccuracy`` (H. Costa, ``olofsson()`` examples, "Example of table 8
    in Olofsson et al. (2014)"); the expected values below are the paper's printed numbers:
    areas in ha with 95 % interval half-widths, user's / producer's accuracies with their
    half-widths, and overall accuracy 0.95 +- 0.02.
    """
    hectares = np.array(OLOFSSON_PIXELS) * 0.09
    result = area_estimates(np.array(OLOFSSON_MATRIX), hectares, OLOFSSON_CLASSES)
    table = result.table
    assert table["area"].round().tolist() == [21_158, 11_686, 285_770, 581_386]
    # the paper's half-widths use z = 1.96; the intervals use the exact 1.95996...
    assert (1.96 * table["area_se"]).round().tolist() == [6_158, 3_756, 15_510, 16_282]
    half_width = (table["area_ci_high"] - table["area_ci_low"]) / 2
    np.testing.assert_allclose(half_width, 1.959964 * table["area_se"], rtol=1e-6)
    assert table["users_accuracy"].round(2).tolist() == [0.88, 0.73, 0.93, 0.96]
    assert (1.96 * table["users_accuracy_se"]).round(2).tolist() == [0.07, 0.10, 0.04, 0.02]
    assert table["producers_accuracy"].round(2).tolist() == [0.75, 0.85, 0.93, 0.96]
    # producer's accuracy half-widths: deforestation and stable forest as printed; the two
    # others are not asserted, the printed values could not be checked against the paper here
    producers_half_width = (1.96 * table["producers_accuracy_se"]).round(2).tolist()
    assert producers_half_width[0] == 0.21 and producers_half_width[2] == 0.03
    assert round(result.overall_accuracy, 2) == 0.95
    assert round(1.96 * result.overall_accuracy_se, 2) == 0.02
    assert table["mapped_area"].sum() == pytest.approx(table["area"].sum())  # areas add up
    assert table.index.tolist() == OLOFSSON_CLASSES


def test_area_estimates_with_a_perfect_sample_keep_the_mapped_areas():
    result = area_estimates(np.diag([10, 20, 30]), np.array([100.0, 200.0, 700.0]))
    np.testing.assert_allclose(result.table["area"], [100, 200, 700])
    np.testing.assert_allclose(result.table["area_se"], 0)
    assert result.overall_accuracy == 1.0


def test_an_empty_stratum_of_zero_area_changes_no_estimate():
    counts = np.array(OLOFSSON_MATRIX)
    k = len(counts)
    padded = np.zeros((k + 1, k + 1))
    padded[:k, :k] = counts  # and a class with neither map area nor samples
    hectares = np.array(OLOFSSON_PIXELS) * 0.09
    alone = area_estimates(counts, hectares).table
    with_empty = area_estimates(padded, np.append(hectares, 0.0)).table.iloc[:k]
    for column in alone.columns:
        np.testing.assert_allclose(with_empty[column], alone[column], equal_nan=False)
    assert np.isfinite(alone["producers_accuracy_se"]).all()


def test_area_estimates_refuse_a_mapped_class_without_samples():
    with pytest.raises(ValueError, match=r"\['water'\] have mapped area but no sample"):
        area_estimates(np.array([[5, 1], [0, 0]]), np.array([10.0, 5.0]), ["forest", "water"])
    with pytest.raises(ValueError, match=r"must be \(2, 2\)"):
        area_estimates(np.eye(3), np.array([1.0, 2.0]))


def test_mcnemar_exact_p_value_by_hand():
    # 10 discordant pixels split 8 / 2: two-sided exact p = 2 * P(X <= 2 | n=10, 1/2)
    # = 2 * (1 + 10 + 45) / 1024; the 5 pixels both get right and 3 both get wrong do not count
    first = np.array([1] * 8 + [0] * 2 + [1] * 5 + [0] * 3, dtype=bool)
    second = np.array([0] * 8 + [1] * 2 + [1] * 5 + [0] * 3, dtype=bool)
    test = mcnemar(first, second)
    assert test["only_first_correct"] == 8 and test["only_second_correct"] == 2
    assert test["n_pixels"] == 18
    assert test["p_value"] == pytest.approx(2 * 56 / 1024)
    assert mcnemar(second, first)["p_value"] == pytest.approx(2 * 56 / 1024)


def test_mcnemar_of_identical_classifiers_is_one():
    same = np.array([1, 0, 1, 1], dtype=bool)
    assert mcnemar(same, same)["p_value"] == 1.0
