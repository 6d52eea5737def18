"""Training configuration: one TOML (or JSON) file per model.

Example (``training/configs/wbc-type.toml`` is a full one)::

    name = "wbc-type"
    model = "effnet-lite0"
    input_size = 128
    classes = ["basophil", "eosinophil", ...]
    data_root = "../shared/data"      # relative dataset roots start here

    [crop]                            # the app's CropRule, copied to the sidecar
    scale = 1.5

    [[train_data]]                    # one or more datasets, concatenated
    name = "pbc"
    kind = "folder"                   # folder | cnmc | taleqani | bccd | zheng | txl | manifest
    root = "pbc"
    licence = "CC BY 4.0"

    [split]
    val = 0.1
    test = 0.2
    seed = 0

    [[eval_data]]                     # other sources, every cell is a test cell
    name = "bccd"
    kind = "bccd"
    root = "bccd"

    [[style_data]]                    # unlabelled cells of other microscopes: their look only
    name = "txl-bcdd"
    kind = "txl"
    root = "txl/bcdd"

    [train]
    epochs = 12
    lr = 1e-3

    [augment]                         # training.augment.AugmentConfig
    hed = 0.05
    style_mix = 0.5                   # needs [[style_data]]

``data_root`` is overridden by the environment variable ``LEUKVIEW_DATA``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from leukview.core.preprocess import CropRule

from .augment import AugmentConfig
from .data import DataError
from .models import model_info

# keys of a dataset entry that describe it and are not loader arguments
DATASET_META = ("name", "licence", "citation", "fields", "note", "relabel")


@dataclass
class TrainSettings:
    """The [train] section."""

    epochs: int = 12
    batch_size: int = 32
    optimizer: str = "adam"  # adam | adamax | sgd | adamw
    lr: float = 1e-3
    weight_decay: float = 1e-5
    momentum: float = 0.9
    schedule: str = "cosine"  # cosine | plateau | none
    patience: int = 3  # early stopping, as in the EfficientNet-B3 paper
    monitor: str = "val_loss"  # val_loss | val_accuracy
    freeze: str | int = "default"  # default | none | backbone | number of leading stages
    balance: str = "weighted-loss"  # weighted-loss | undersample | sampler | none
    label_smoothing: float = 0.0
    seed: int = 0
    threads: int = 2
    steps_per_epoch: int = 0  # 0: the whole training set each epoch
    eval_batch_size: int = 64
    # train: BatchNorm layers learn this data's batch statistics; frozen: every BatchNorm keeps its
    # ImageNet statistics (only its scale and shift train), so no statistic of one microscope's batches
    # is baked in (Tsutsui et al. 2023 saw batch statistics collapse across microscopes)
    batchnorm: str = "train"

    def __post_init__(self) -> None:
        checks = {
            "optimizer": ("adam", "adamax", "sgd", "adamw"),
            "schedule": ("cosine", "plateau", "none"),
            "monitor": ("val_loss", "val_accuracy"),
            "balance": ("weighted-loss", "undersample", "sampler", "none"),
            "batchnorm": ("train", "frozen"),
        }
        for key, allowed in checks.items():
            if getattr(self, key) not in allowed:
                raise DataError(f"[train] {key} must be one of {', '.join(allowed)}, got {getattr(self, key)!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise DataError("[train] epochs and batch_size must be >= 1 and lr > 0")


@dataclass
class Config:
    """A parsed training configuration."""

    name: str
    model: str
    classes: list[str]
    train_data: list[dict[str, Any]]
    input_size: int = 128
    version: str = "1.0.0"
    description: str = ""
    weights: str | None = "imagenet"
    applies_to: list[str] = field(default_factory=lambda: ["wbc"])
    positive_class: str | None = None
    data_root: str = "../shared/data"
    cache_dir: str = "cache"
    runs_dir: str = "runs"
    colour_norm: str = "none"
    reuse_segmentation: bool = False
    # class -> offset added to its logit after training (a prior correction; see train.apply_logit_bias)
    logit_bias: dict[str, float] = field(default_factory=dict)
    crop: CropRule = field(default_factory=CropRule)
    split: dict[str, Any] = field(default_factory=dict)
    eval_data: list[dict[str, Any]] = field(default_factory=list)
    # unlabelled cells of other microscopes: their look only (augment.style_mix), never their labels
    style_data: list[dict[str, Any]] = field(default_factory=list)
    train: TrainSettings = field(default_factory=TrainSettings)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    xgboost: dict[str, Any] = field(default_factory=dict)
    # weight averaging of runs that differ in augmentation or schedule (training.soup)
    soup: dict[str, Any] = field(default_factory=dict)
    # open-set score exported into the graph (training.openset): {"score": "mahalanobis", "quantile": 0.98}
    openset: dict[str, Any] = field(default_factory=dict)
    # auxiliary attribute head (training.attributes): {"root": "wbcatt", "weight": 0.3, "exclude": [...]}
    attributes: dict[str, Any] = field(default_factory=dict)
    # what the exported graph keeps (training.export): {"classes": [rows of the head, in order],
    # "refines": [the type model's classes this model re-decides]}: a second-stage model
    export: dict[str, Any] = field(default_factory=dict)
    # start from an exported model folder instead of ImageNet (training.warmstart); needs batchnorm = "frozen"
    init: str | None = None
    licence: str = ""
    source: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def mean(self) -> list[float]:
        return list(model_info(self.model).mean)

    @property
    def std(self) -> list[float]:
        return list(model_info(self.model).std)

    def resolved_data_root(self) -> Path:
        return Path(os.environ.get("LEUKVIEW_DATA") or self.data_root)

    @property
    def fallback(self) -> bool:
        return bool(self.split.get("fallback", True))


def load_config(path: str | os.PathLike[str], overrides: dict[str, Any] | None = None) -> Config:
    """Read a TOML or JSON training config.

    Parameters
    ----------
    path : path
    overrides : dict, optional
        Top-level keys replaced after reading; ``train`` and ``augment``
        dictionaries are merged key by key.

    Raises
    ------
    DataError
        When the file is missing, unparsable, or a required key is absent.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read config ({exc.strerror or exc})", path) from exc
    if path.suffix.lower() == ".json":
        parse, errors = json.loads, (json.JSONDecodeError,)
    else:
        try:
            import tomllib
        except ModuleNotFoundError as exc:  # Python 3.10
            raise DataError("TOML configs need Python 3.11 or later; write the config as JSON", path) from exc
        parse, errors = tomllib.loads, (tomllib.TOMLDecodeError,)
    try:
        raw = parse(text)
    except errors as exc:
        raise DataError(f"config is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}", path) from exc
    return config_from_dict(raw, overrides, source=str(path))


def config_from_dict(raw: dict[str, Any], overrides: dict[str, Any] | None = None, source: str = "") -> Config:
    """Build a :class:`Config` from a dictionary (see :func:`load_config`)."""
    raw = json.loads(json.dumps(raw))  # a deep copy
    for key, value in (overrides or {}).items():
        if key in ("train", "augment", "split", "xgboost", "crop") and isinstance(value, dict):
            raw.setdefault(key, {}).update(value)
        else:
            raw[key] = value
    for key in ("name", "model", "classes", "train_data"):
        if key not in raw:
            raise DataError(f"config lacks '{key}'", source or None)
    try:
        model_info(raw["model"])
        train = _only_known(TrainSettings, raw.get("train", {}), "train")
        augment = AugmentConfig.from_dict(raw.get("augment"))
        crop = CropRule.from_dict(raw.get("crop", {}))
    except (TypeError, ValueError) as exc:
        raise DataError(f"config: {exc}", source or None) from exc
    if crop.background == "black" and augment.background != "black":
        augment = AugmentConfig.from_dict({**augment.to_dict(), "background": "black"})
    known = {f.name for f in fields(Config)} - {"crop", "train", "augment", "raw", "source"}
    unknown = set(raw) - known - {"crop", "train", "augment"}
    if unknown:
        raise DataError(f"config has unknown key(s): {', '.join(sorted(unknown))}", source or None)
    weights = raw.get("weights", "imagenet")
    config = Config(
        **{k: raw[k] for k in known if k in raw and k != "weights"},
        weights=None if weights in (None, "", "none") else str(weights),
        crop=crop, train=train, augment=augment, raw=raw, source=source,
    )
    if len(set(config.classes)) != len(config.classes) or len(config.classes) < 2:
        raise DataError("config 'classes' must list at least two distinct names", source or None)
    if config.positive_class is not None and config.positive_class not in config.classes:
        raise DataError(f"positive_class {config.positive_class!r} is not one of the classes", source or None)
    if config.augment.style_mix and not config.style_data:
        raise DataError("[augment] style_mix needs at least one [[style_data]] dataset", source or None)
    unknown_bias = set(config.logit_bias) - set(config.classes)
    if unknown_bias:
        raise DataError(f"logit_bias names unknown classes: {', '.join(sorted(unknown_bias))}", source or None)
    if config.openset:
        if config.openset.get("score", "mahalanobis") != "mahalanobis":
            raise DataError("[openset] score must be 'mahalanobis'", source or None)
        if config.openset.get("fit_on", "augmented") not in ("augmented", "plain"):
            raise DataError("[openset] fit_on must be 'augmented' or 'plain'", source or None)
        quantile = config.openset.get("quantile", 0.98)
        if isinstance(quantile, bool) or not isinstance(quantile, (int, float)) or not 0.5 <= quantile < 1:
            raise DataError("[openset] quantile must be a number in [0.5, 1)", source or None)
    if config.export:
        unknown_keys = set(config.export) - {"classes", "refines"}
        head = config.export.get("classes", config.classes)
        refines = config.export.get("refines")
        if unknown_keys:
            raise DataError(f"[export] has unknown key(s): {', '.join(sorted(unknown_keys))}", source or None)
        if (not isinstance(head, list) or len(head) < 2 or len(set(head)) != len(head)
                or not set(head) <= set(config.classes)):
            raise DataError("[export] classes must list at least two distinct classes of the config", source or None)
        if refines is not None and (not isinstance(refines, list) or not refines
                                    or not all(isinstance(n, str) and n for n in refines)
                                    or config.positive_class is not None):
            raise DataError("[export] refines must be a non-empty list of class names (and no positive_class)",
                            source or None)
    if config.colour_norm not in ("none", "instance"):
        raise DataError("colour_norm must be 'none' or 'instance'", source or None)
    return config


def _only_known(cls: type, data: dict[str, Any], section: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"[{section}] has unknown key(s): {', '.join(sorted(unknown))}")
    return cls(**data)


def dataset_name(entry: dict[str, Any]) -> str:
    """A dataset entry's name: its ``name``, else its root folder's name."""
    return entry.get("name") or Path(str(entry["root"])).name


def loader_args(entry: dict[str, Any]) -> dict[str, Any]:
    """A dataset entry without its descriptive keys (what the loader takes)."""
    return {k: v for k, v in entry.items() if k not in DATASET_META}
