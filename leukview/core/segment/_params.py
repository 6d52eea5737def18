"""The tunables of :func:`leukview.core.segment.segment`, with their persistence."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import LeukViewError


@dataclass(frozen=True)
class SegmentationParams:
    """Every tunable of :func:`segment`, with defaults that work across stains.

    Sizes are multiples of the red-cell diameter ``d`` (estimated per image
    unless :attr:`rbc_diameter` is given), so they hold at any magnification.
    """

    rbc_diameter: float | None = None
    """Red-cell diameter in image pixels; None estimates it from the image."""

    work_rbc_diameter: float = 24.0
    """The image is shrunk so a red cell spans about this many pixels (never enlarged)."""

    smoothing: float = 1.0
    """Gaussian smoothing before thresholding, in work-image pixels."""

    black_background_level: int = 25
    """Pixels darker than this in every channel are background (cells cut out on black)."""

    cell_threshold_scale: float = 1.0
    """Multiplies the automatic (Otsu) threshold of total stain that separates cells from background."""

    min_cell_density: float = 0.08
    """Lowest total optical density counted as a cell whatever Otsu says (blank fields find nothing)."""

    nucleus_threshold_scale: float = 1.0
    """Multiplies the automatic (Otsu) threshold of the nuclear stain; above 1 keeps only darker nuclei."""

    min_nucleus_contrast: float = 20.0
    """Least blue-minus-green excess over the background (0-255) counted as nuclear stain."""

    lobe_merge_distance: float = 0.5
    """Nuclear fragments closer than this (× d) are lobes of one cell."""

    split_depth: float = 0.3
    """Touching nuclei are split where the waist between them is this much thinner (× d) than each."""

    split_min_radius: float = 0.25
    """A nucleus core must be at least this thick (half-width, × d) to seed its own cell."""

    min_split_nucleus_area: float = 0.4
    """Touching nuclei are split only if each piece has at least this area (× red-cell area)."""

    min_split_group_area: float = 1.3
    """Nuclear groups smaller than this (× red-cell area) are one cell, never split."""

    min_wbc_nucleus_area: float = 0.3
    """Smallest white-cell nucleus (× red-cell area); smaller stained specks are platelets."""

    min_nucleus_thickness: float = 0.15
    """A white-cell nucleus is at least this thick somewhere (half-width, × d); platelet clumps are thinner."""

    min_border_nucleus_chord: float = 0.4
    """A stained group cut by the image border is a white-cell nucleus when it runs at least
    this far along the border (× d) and is dark (see ``min_border_nucleus_stain``)."""

    min_border_nucleus_stain: float = 1.3
    """A border-cut nucleus peaks at least this many times the nuclear-stain threshold."""

    min_platelet_area: float = 0.01
    """Smallest platelet (× red-cell area); smaller specks are noise."""

    max_lobed_nucleus_fraction: float = 0.6
    """Touching white cells are one cell when their nuclei fill at most this fraction of them."""

    max_wbc_diameter: float = 2.6
    """Largest white cell (equivalent diameter, × d) that lobes may be joined into."""

    cytoplasm_ring: float = 0.08
    """Width of the ring around a nucleus (× d) whose colour is taken as the cell's cytoplasm."""

    min_cytoplasm_contrast: float = 0.08
    """Cytoplasm is told from red cells by colour only when their optical densities differ this much."""

    max_cytoplasm_width: float = 0.45
    """Cytoplasm is grown at most this far beyond the nucleus (× d)."""

    rbc_split_depth: float = 0.1
    """Touching red cells are split where the waist between them is this much thinner (× d)."""

    min_rbc_area: float = 0.25
    """Smallest red cell (× red-cell area); smaller pieces are dropped."""

    rbc_threshold_scale: float = 0.6
    """Multiplies the automatic (Otsu, glass | red cells) threshold of total stain for red cells."""

    rbc_marker_distance: float = 0.35
    """Red-cell watershed seeds are distance-transform peaks at least this far apart (× d)."""

    rbc_close: float = 0.1
    """Gaps in a red cell's rim up to about twice this (× d) are closed so its pallor is filled."""

    max_rbc_area: float = 1.8
    """A red-cell piece larger than this (× red-cell area) is a clump, divided by area."""

    platelet_threshold_scale: float = 0.6
    """Platelets are specks above this fraction of the nuclear-stain threshold (paler than nuclei)."""

    max_platelet_area: float = 0.3
    """Largest platelet (× red-cell area)."""

    platelet_peak_scale: float = 0.8
    """A platelet's darkest point reaches at least this fraction of the nuclear-stain threshold."""

    max_platelet_surround: float = 0.95
    """A platelet lies on the glass: at most this fraction of a thin ring around it is red cells."""

    detect_rbc: bool = True
    """Find and split red cells (turn off to segment white cells only, faster)."""

    detect_platelets: bool = True
    """Report small stained specks as platelets."""

    def __post_init__(self) -> None:
        if self.rbc_diameter is not None and not self.rbc_diameter > 0:
            raise LeukViewError(f"rbc_diameter must be positive, got {self.rbc_diameter}")
        if not self.work_rbc_diameter >= 8:
            raise LeukViewError(f"work_rbc_diameter must be at least 8 px, got {self.work_rbc_diameter}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dictionary (settings persistence)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentationParams:
        """Inverse of :meth:`to_dict`; unknown keys (older or newer settings) are ignored."""
        names = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names or value is None:
                if key in names:
                    kwargs[key] = None
                continue
            default = getattr(cls, key, None)
            if isinstance(default, bool):
                kwargs[key] = bool(value)
            elif isinstance(default, int):
                kwargs[key] = int(value)
            else:
                kwargs[key] = float(value)
        return cls(**kwargs)

    @staticmethod
    def describe() -> dict[str, str]:
        """One-line description of every field (for tooltips)."""
        import inspect

        src = inspect.getsource(SegmentationParams)
        out: dict[str, str] = {}
        lines = src.splitlines()
        for i, line in enumerate(lines[:-1]):
            head = line.strip()
            if ":" in head and "=" in head and not head.startswith(("def", "#", '"')):
                name = head.split(":", 1)[0]
                doc = lines[i + 1].strip()
                if doc.startswith('"""'):
                    out[name] = doc.strip('"')
        return out
