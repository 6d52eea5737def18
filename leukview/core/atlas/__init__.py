"""Reference atlases: labelled cells to compare a cell with ("cells like this one").

An atlas holds reference cells (a thumbnail, a label, the source and its
licence) and their embeddings by one shipped model: its pooled ``features``
output, the maps the CAM is made of, L2-normalised. A cell's nearest atlas
cells (cosine distance) and their labels are a second opinion beside the
classifier's call; see ``docs/explain.md`` for the format, how the default
atlases were built and how often the second opinion agrees with the truth.

* :class:`Atlas`: :meth:`Atlas.load` (validated; refuses an atlas made with
  another model), :meth:`Atlas.search`, :meth:`Atlas.thumbnail`,
  :meth:`Atlas.create`, :meth:`Atlas.add` / :meth:`Atlas.add_cells` (dedupe by
  the crop's content hash), :meth:`Atlas.info`, :meth:`Atlas.build_index`;
* :func:`embed_cells` / :func:`embed_crops`: query embeddings of cells;
* :class:`Neighbour`, :func:`majority_label`;
* :func:`default_atlas_dir`, :func:`load_default_atlas`: the atlas shipped
  in ``models/<name>/atlas``.

Search is exact (numpy) unless the atlas has a faiss index
(``pip install 'leukview[atlas-index]'``, :meth:`Atlas.build_index`); the
app works without faiss.
"""

from ._atlas import Atlas, default_atlas_dir, load_default_atlas
from ._embed import (
    THUMBNAIL_SIZE,
    cell_crops,
    crop_hash,
    embed_cells,
    embed_crops,
    embedding_dim,
    pooled_embeddings,
)
from ._format import (
    ATLAS_FILE,
    CELLS_FILE,
    DEFAULT_ATLAS_DIR,
    EMBEDDINGS_FILE,
    FORMAT,
    INDEX_FILE,
    INDEX_MIN_CELLS,
    OFFSETS_FILE,
    SCHEMA_VERSION,
    THUMBNAILS_FILE,
    AddResult,
    AtlasEntry,
    AtlasError,
    AtlasSource,
)
from ._search import Neighbour, faiss_module, majority_label, normalize_rows

__all__ = [
    "ATLAS_FILE",
    "CELLS_FILE",
    "DEFAULT_ATLAS_DIR",
    "EMBEDDINGS_FILE",
    "FORMAT",
    "INDEX_FILE",
    "INDEX_MIN_CELLS",
    "OFFSETS_FILE",
    "SCHEMA_VERSION",
    "THUMBNAILS_FILE",
    "THUMBNAIL_SIZE",
    "AddResult",
    "Atlas",
    "AtlasEntry",
    "AtlasError",
    "AtlasSource",
    "Neighbour",
    "cell_crops",
    "crop_hash",
    "default_atlas_dir",
    "embed_cells",
    "embed_crops",
    "embedding_dim",
    "faiss_module",
    "load_default_atlas",
    "majority_label",
    "normalize_rows",
    "pooled_embeddings",
]
