"""Start a network from an exported LeukView model (its ONNX graph), e.g. wbc-type 1.3.0 for 2.0.0.

The export folds each BatchNorm into the convolution before it, so the graph
holds one (weight, bias) pair per convolution. :func:`state_from_model`
puts each pair into the matching convolution of a fresh :class:`CellNet` and
turns its BatchNorm into the identity plus that bias (running mean 0,
variance 1, scale 1): with frozen BatchNorm (``[train] batchnorm =
"frozen"``) the network computes exactly what the exported model computed,
and fine-tuning trains the convolutions and the per-channel scales and
shifts. The linear head's rows are copied by class name (the export's logit
offsets taken back out); new classes start at zero.

Config::

    init = "runs/wbc-type-1.3.0"      # a model folder: model.onnx + model.json
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

log = logging.getLogger("training.warmstart")


def _conv_pairs(proto: onnx.ModelProto) -> list[tuple[np.ndarray, np.ndarray | None]]:
    init = {t.name: t for t in proto.graph.initializer}
    pairs = []
    for node in proto.graph.node:
        if node.op_type != "Conv":
            continue
        weight = numpy_helper.to_array(init[node.input[1]])
        bias = numpy_helper.to_array(init[node.input[2]]) if len(node.input) > 2 and node.input[2] in init else None
        pairs.append((weight, bias))
    return pairs


def _conv_bn(model: nn.Module) -> list[tuple[nn.Conv2d, nn.Module | None]]:
    """Each convolution of the backbone with the BatchNorm that follows it, in forward order."""
    modules = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    pairs: list[tuple[nn.Conv2d, nn.Module | None]] = []
    for i, m in enumerate(modules):
        if isinstance(m, nn.Conv2d):
            nxt = modules[i + 1] if i + 1 < len(modules) else None
            pairs.append((m, nxt if isinstance(nxt, nn.BatchNorm2d) else None))
    return pairs


def load_exported(model: Any, folder: str | Path, classes: list[str]) -> dict[str, Any]:
    """Load an exported model's folded weights into ``model`` (a CellNet), in place.

    Parameters
    ----------
    model : CellNet
        Same architecture and input size as the exported model.
    folder : path
        The exported model's folder (``model.onnx``, ``model.json``).
    classes : list of str
        The new model's classes; rows of classes the exported model knows are copied.

    Returns
    -------
    report : dict
        The exported model, the convolutions loaded, the classes copied and new.
    """
    from leukview.core.models import read_sidecar

    folder = Path(folder)
    spec = read_sidecar(folder / "model.json")
    proto = onnx.load(str(folder / "model.onnx"))
    pairs = _conv_pairs(proto)
    targets = _conv_bn(model.backbones[0])
    if len(pairs) != len(targets):
        raise ValueError(f"{folder}: {len(pairs)} convolutions in the graph, {len(targets)} in the network")
    with torch.no_grad():
        for (weight, bias), (conv, bn) in zip(pairs, targets, strict=True):
            if tuple(conv.weight.shape) != weight.shape:
                raise ValueError(f"{folder}: convolution shapes differ: {weight.shape} vs {tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.from_numpy(weight.copy()))
            b = torch.from_numpy(bias) if bias is not None else torch.zeros(weight.shape[0])
            if bn is None:
                if conv.bias is None:
                    raise ValueError(f"{folder}: a folded bias has nowhere to go")
                conv.bias.copy_(b)
                continue
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
            bn.weight.fill_(1.0)
            bn.bias.copy_(b)
        init = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
        weight = init[spec.cam_weight or "classifier.weight"]
        bias = init["classifier.bias"].astype(np.float64)
        offsets = spec.training.get("logit_bias") or {}
        for name, offset in offsets.items():  # the export added the prior correction: take it out
            bias[spec.classes.index(name)] -= float(offset)
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        copied = []
        for row, name in enumerate(classes):
            if name in spec.classes:
                k = spec.classes.index(name)
                model.classifier.weight[row].copy_(torch.from_numpy(weight[k]))
                model.classifier.bias[row] = float(bias[k])
                copied.append(name)
    report = {"from": f"{spec.name} {spec.version}", "sha256": spec.sha256[:16], "convolutions": len(pairs),
              "classes_copied": copied, "classes_new": [c for c in classes if c not in copied]}
    log.info("warm start from %s: %s", folder, report)
    return report
