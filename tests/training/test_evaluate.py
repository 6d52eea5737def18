"""Metrics, field calls and temperature scaling on cases whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from training.evaluate import (
    classification_metrics,
    expected_calibration_error,
    field_metrics,
    fit_temperature,
)


def test_metrics_on_known_cases() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([0, 1, 1, 1])
    m = classification_metrics(y, probs, ["blast", "normal"], positive="blast")
    assert m["accuracy"] == 0.75
    assert m["confusion"] == [[1, 0], [1, 2]]
    assert m["roc_auc"] == 1.0
    assert expected_calibration_error(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1])) == 0.0
    # two fields: A all blasts (called blast), B normal with one of two cells called blast -> called blast
    f = field_metrics(["A", "A", "B", "B"], [0, 0, 1, 1], [0, 0, 0, 1], positive=0, fields_without_cells={"x": 1})
    assert f["n_fields"] == 2 and f["accuracy"] == 0.5 and f["accuracy_all_fields"] == pytest.approx(1 / 3)


def test_fit_temperature_undoes_over_and_underconfidence() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (4000, 4))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(4, p=p) for p in probs])  # labels drawn from the calibrated probabilities
    assert fit_temperature(3 * logits, labels) == pytest.approx(3.0, rel=0.1)
    assert fit_temperature(logits / 2, labels) == pytest.approx(0.5, rel=0.1)
