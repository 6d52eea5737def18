"""The PySide6 viewer: presents what leukview.core computes."""
