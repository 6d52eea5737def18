"""The guard against PySide6 6.12's reference-count bug."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QGraphicsItem, QGraphicsScene

pytestmark = pytest.mark.gui


def test_qt_binding_refcount_bug_is_neutralised(qapp):  # noqa: ANN001
    """PySide6 6.12 on Python 3.11 drops a reference to None per Python paint(): guarded."""
    from leukview.gui import _qtfix

    class Item(QGraphicsItem):
        def boundingRect(self) -> QRectF:
            return QRectF(0, 0, 4, 4)

        def paint(self, painter, option, widget=None) -> None:  # noqa: ANN001
            pass

    scene = QGraphicsScene()
    scene.addItem(Item())
    target = QImage(8, 8, QImage.Format.Format_RGB32)
    before = sys.getrefcount(None)
    for _ in range(50):
        painter = QPainter(target)
        scene.render(painter)
        painter.end()
    leaked = before - sys.getrefcount(None)
    if leaked > 40 and sys.version_info < (3, 12):
        assert _qtfix.GUARDED and sys.getrefcount(None) > 1 << 39
    assert _qtfix.needs_guard("6.12.0", (3, 11)) and not _qtfix.needs_guard("6.11.3", (3, 11))
    assert not _qtfix.needs_guard("6.12.0", (3, 12))
