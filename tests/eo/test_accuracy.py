import json

import numpy as np
import pytest

from perceptive.eo.accuracy import block_bootstrap_ci, classification_report
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
