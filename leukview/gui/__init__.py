"""LeukView's PySide6 viewer. Start it with :func:`leukview.gui.app.main`."""

from . import _qtfix  # noqa: F401  (must run before any Qt object calls back into Python)
