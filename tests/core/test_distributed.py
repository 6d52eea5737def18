"""Dask: the same tiles and fields on a LocalCluster of two worker processes give the same results."""

from __future__ import annotations

import json

import pytest
from onnx_factory import make_tiny_classifier
from slide_factory import SAMPLES, mosaic, write_svs

from leukview.core import distributed
from leukview.core.distributed import (
    DaskExecutor,
    FieldOptions,
    analyse_field_file,
    cluster_client,
    dask_available,
    worker_models,
)
from leukview.core.io import open_slide
from leukview.core.models import load_models
from leukview.core.tiling import SerialExecutor, TilingParams, analyse_slide

pytestmark = pytest.mark.skipif(not dask_available(), reason="dask.distributed is not installed")


def _cached_models() -> int:
    return len(distributed._MODELS)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    make_tiny_classifier(folder / "tiny", ["lymphocyte", "neutrophil", "monocyte"], seed=5)
    return folder


@pytest.fixture(scope="module")
def client():
    with cluster_client(workers=2) as client:
        client.wait_for_workers(2, timeout=120)
        yield client


def _json(document: dict) -> str:
    return json.dumps(document, separators=(",", ":"))


def test_fields_on_two_workers_match_the_single_process_run_byte_for_byte(client, models_dir):
    classifiers = load_models(None, models_dir)
    items = [(str(p), p.name) for p in SAMPLES]
    options = FieldOptions(models=("tiny",), models_dir=str(models_dir))
    here = {k: _json(analyse_field_file(p, classifiers, image_name=n)[0].to_dict()) for k, (p, n) in enumerate(items)}
    there = {}
    for k, result in DaskExecutor(client).fields(items, options):
        assert "error" not in result
        there[k] = _json(result["document"])
    assert there == here
    # each worker loaded the models once, however many images it got
    assert set(client.run(_cached_models).values()) == {1}


def test_slide_tiles_on_two_workers_give_the_same_cells_json(client, models_dir, tmp_path):
    path = write_svs(tmp_path / "mosaic.svs", mosaic(2, 3))
    classifiers = load_models(None, models_dir)
    tiling = TilingParams(tile_size=768, rbc_every=2)
    runs = {}
    for name, executor in (("serial", SerialExecutor(classifiers)), ("dask", DaskExecutor(client))):
        summary, plan, _ = analyse_slide(
            open_slide(path), tmp_path / name, classifiers, tiling=tiling, models_dir=str(models_dir),
            executor=executor, resume=False,
        )
        runs[name] = summary.cells_json.read_bytes()
        assert not summary.failed and summary.tiles_done == len(plan.tiles) > 2
    assert runs["dask"] == runs["serial"]
    assert json.loads(runs["dask"])["counts_by_kind"]["wbc"] >= 5


def test_a_task_that_fails_on_a_worker_is_a_named_failure(client, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    results = dict(DaskExecutor(client).fields([(str(bad), "broken.jpg")], FieldOptions()))
    assert "error" in results[0] and results[0]["error"]


def test_models_are_loaded_once_per_process(models_dir):
    first = worker_models(["tiny"], str(models_dir))
    assert worker_models(["tiny"], str(models_dir)) is first
    assert worker_models([], None) == []
