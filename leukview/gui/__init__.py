"""LeukView's PySide6 viewer. Start it with :func:`leukview.gui.app.main`."""
