"""load_sources: a config entry names its loader, its root and a per-label limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from training import data as tdata


def test_load_sources_from_a_config_entry(tmp_path: Path, write_image, monkeypatch) -> None:
    for cls in ("a", "b"):
        for i in range(4):
            write_image(tmp_path / "sets" / "cells" / cls / f"{i}.png")
    sources = tdata.load_sources({"name": "cells", "kind": "folder", "root": "cells", "classes": ["b"]},
                                 tmp_path / "sets")
    assert [s.label for s in sources] == ["b"] * 4
    assert sources[0].path == (tmp_path / "sets" / "cells" / "b" / "0.png").resolve()
    limited = tdata.load_sources({"root": str(tmp_path / "sets" / "cells"), "limit": 2})  # kind folder by default
    assert [s.path.name for s in limited] == ["0.png", "1.png", "0.png", "1.png"]
    monkeypatch.setenv("CELLS_ROOT", str(tmp_path / "sets"))
    assert len(tdata.load_sources({"kind": "folder", "root": "$CELLS_ROOT/cells"})) == 8
    with pytest.raises(tdata.DataError, match="unknown dataset kind 'pbc'"):
        tdata.load_sources({"kind": "pbc", "root": "cells"}, tmp_path / "sets")
    with pytest.raises(TypeError):
        tdata.load_sources({"kind": "folder", "root": "cells", "fold": 1}, tmp_path / "sets")


def test_every_kind_reaches_its_loader(tmp_path: Path) -> None:
    # an empty folder: each loader fails with its own message, so the kind chose it
    messages = {
        "folder": "no images found", "cnmc": "no C-NMC cells", "taleqani": "no images found",
        "bccd": "wbc_types.csv", "zheng": "label table", "txl": "images/ and labels/", "manifest": "manifest",
    }
    for kind, message in messages.items():
        with pytest.raises(tdata.DataError, match=message):
            tdata.load_sources({"kind": kind, "root": "."}, tmp_path)
