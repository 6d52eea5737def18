"""Datasets of cell crops made by the app's own preprocessing, cached on disk.

A dataset is first a list of :class:`Source` records (an image, its label,
its group for splitting, and how its cells are found); :func:`extract_crops`
then finds the cells and cuts them with
:func:`leukview.core.preprocess.crop_cell`, exactly as the app does, and
caches the uint8 crops so an epoch never re-segments.

How cells are found (``Source.finder``):

``centre``
    Single-cell images (PBC, a hospital's cut-out cells): the app's
    segmentation runs and the white cell nearest the image centre is kept.
    When none is found the crop is a centred box of the mean white-cell
    diameter of the dataset; these fallbacks are counted and reported.
``all``
    Fields with one label (Taleqani): every white cell of the field takes the
    field's label.
``box``
    Fields with annotated white-cell boxes (BCCD): each box is matched to the
    segmented white cell whose centroid lies inside it, nearest its centre;
    boxes the segmentation misses are counted.
``mask``
    Cells already cut out on black (C-NMC): the cell is the largest non-black
    region, its contour taken from that mask.

Loaders: :func:`folder_dataset` (a folder per class, PBC layout),
:func:`cnmc_dataset` (C-NMC 2019 official or Kaggle layout, subjects from
file names), :func:`taleqani_dataset`, :func:`bccd_dataset`,
:func:`zheng_dataset` (Zheng et al. 2018 labelled white cells),
:func:`txl_dataset` (fields with white-cell boxes but no types),
:func:`manifest_dataset` (a CSV ``path,label,group`` for a hospital's own
data); :func:`load_sources` picks one from a config entry.

Splits (:func:`grouped_split`) never put one group (subject, field or source
image) on both sides.
"""

from ._cache import (
    CACHE_VERSION,
    CropSet,
    extract_crops,
    segment_sources,
)
from ._cell_images import (
    CNMC_LABELS,
    ZHENG_LABELS,
    cnmc_dataset,
    cnmc_subject,
    folder_dataset,
    manifest_dataset,
    zheng_dataset,
)
from ._cells import (
    Segmenter,
    app_segmenter,
    box_cell,
    cell_from_mask,
    cell_on_black,
    match_box,
    nearest_to,
    read_rgb,
    segmenter_fingerprint,
    select_cells,
)
from ._fields import (
    BCCD_LABELS,
    TALEQANI_LABELS,
    bccd_dataset,
    read_voc_boxes,
    read_yolo_boxes,
    taleqani_dataset,
    txl_dataset,
)
from ._source import (
    FINDERS,
    IMAGE_SUFFIXES,
    DataError,
    Source,
    repo_path,
)
from ._spec import load_sources
from ._split import (
    assert_disjoint,
    grouped_split,
    inherit_split,
    load_split,
    save_split,
    split_indices,
)

__all__ = [
    "app_segmenter",
    "assert_disjoint",
    "bccd_dataset",
    "BCCD_LABELS",
    "box_cell",
    "CACHE_VERSION",
    "cell_from_mask",
    "cell_on_black",
    "cnmc_dataset",
    "CNMC_LABELS",
    "cnmc_subject",
    "CropSet",
    "DataError",
    "extract_crops",
    "FINDERS",
    "folder_dataset",
    "grouped_split",
    "IMAGE_SUFFIXES",
    "inherit_split",
    "load_sources",
    "load_split",
    "manifest_dataset",
    "match_box",
    "nearest_to",
    "read_rgb",
    "read_voc_boxes",
    "read_yolo_boxes",
    "repo_path",
    "save_split",
    "segment_sources",
    "Segmenter",
    "segmenter_fingerprint",
    "select_cells",
    "Source",
    "split_indices",
    "taleqani_dataset",
    "TALEQANI_LABELS",
    "txl_dataset",
    "zheng_dataset",
    "ZHENG_LABELS",
]
