"""training.openset: Mahalanobis distance to the nearest class, fitted on training cells, inside the ONNX graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.openset import OpenSetHead, fit_mahalanobis, flagged  # noqa: E402


def _clusters(rng: np.random.Generator, n: int = 200, dim: int = 16) -> tuple[np.ndarray, np.ndarray]:
    centres = np.eye(3, dim) * 6.0
    y = rng.integers(0, 3, n)
    return centres[y] + rng.normal(0, 1, (n, dim)), y


def test_cells_far_from_every_class_score_high_and_the_head_computes_the_same_in_torch() -> None:
    rng = np.random.default_rng(0)
    x, y = _clusters(rng)
    fit = fit_mahalanobis(x, y, 3)
    assert fit.means.shape == (3, 16) and fit.counts.tolist() == np.bincount(y).tolist()
    inside, _ = _clusters(rng, 300)
    outside = rng.normal(0, 1, (300, 16)) + np.r_[np.full(8, 5.0), np.zeros(8)]  # between and beside the classes
    s_in, s_out = fit.scores(inside), fit.scores(outside)
    assert np.median(s_in) == pytest.approx(1.0, abs=0.3)  # squared distance / dimensions: about 1 inside
    threshold = float(np.quantile(s_in, 0.98))
    assert flagged(s_in, threshold) == pytest.approx(0.02, abs=0.01)
    assert flagged(s_out, threshold) > 0.9
    head = OpenSetHead(fit).eval()
    with torch.no_grad():
        got = head(torch.from_numpy(np.concatenate([inside, outside]).astype(np.float32))).numpy()
    np.testing.assert_allclose(got, np.concatenate([s_in, s_out]), rtol=1e-4)
    assert np.isnan(flagged(np.zeros(0), 1.0))


@pytest.mark.slow
@pytest.mark.real_data
def test_exported_model_carries_its_open_set_score(tiny_cnmc_config, tmp_path: Path) -> None:
    """One C-NMC epoch with [openset]: the export writes the output, the sidecar block and the card section."""
    from leukview.core.models import Classifier, read_sidecar
    from training.config import config_from_dict
    from training.export import export_run
    from training.train import run

    raw = tiny_cnmc_config("tiny-openset")
    raw["openset"] = {"score": "mahalanobis", "quantile": 0.9}
    run(config_from_dict(raw), tmp_path / "run", progress=False, command="test")
    report = export_run(tmp_path / "run", tmp_path / "model")
    assert report["parity_max_abs_diff"]["atypicality"] <= 1e-3
    spec = read_sidecar(tmp_path / "model" / "model.json")
    assert spec.openset is not None and spec.openset["output"] == "atypicality"
    assert spec.openset["threshold"] > 0 and 0 <= spec.openset["flagged_fraction_heldout"] <= 1
    assert "validation" in spec.openset["threshold_on"]
    classifier = Classifier.load(tmp_path / "model")
    assert classifier.spec.openset_output == "atypicality"
    assert "## Atypical cells (open-set score)" in (tmp_path / "model" / "README.md").read_text()
