"""Inception-I3D with the parameter names of the WLASL repository's ``InceptionI3d``.

Written from the published architecture (Carreira & Zisserman, "Quo Vadis, Action Recognition?")
so that WLASL checkpoints load unchanged: every ``state_dict`` key and shape matches, the
TensorFlow-style "same" padding is reproduced, and the head is the 2x7x7 average pool followed by a
1x1x1 convolution that gives per-time-step logits ``(N, C, T')`` with ``T' = T/8 - 1`` at 224x224.

``width`` scales every channel count, for small variants (the demo model, fast tests); at 1.0 the
network is exactly the published one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.01

# Mixed blocks: name, then the six branch widths (1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 | pool -> 1x1).
_INCEPTION_BLOCKS: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" padding for one axis as (before, after); the extra pixel goes after."""
    if size % stride == 0:
        total = max(kernel - stride, 0)
    else:
        total = max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
    # Sizes are read as Python ints so that an ONNX export bakes constant pads into the graph
    # (the exported model has a static input shape anyway).
    pads: list[int] = []
    for axis in (4, 3, 2):
        before, after = same_padding(int(x.shape[axis]), kernel[axis - 2], stride[axis - 2])
        pads += [before, after]
    return F.pad(x, pads)


class Unit3D(nn.Module):
    """Convolution with "same" padding, optional BatchNorm and ReLU (keys: conv3d, bn)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        batch_norm: bool = True,
        relu: bool = True,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride
        self.relu = relu
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, bias=bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    """Max pooling over a zero-padded input, as the WLASL model does (inputs are post-ReLU)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four parallel branches concatenated on channels (keys b0, b1a, b1b, b2a, b2b, b3b)."""

    def __init__(self, in_channels: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3D(in_channels, w0)
        self.b1a = Unit3D(in_channels, w1a)
        self.b1b = Unit3D(w1a, w1b, kernel=(3, 3, 3))
        self.b2a = Unit3D(in_channels, w2a)
        self.b2b = Unit3D(w2a, w2b, kernel=(3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, w3b)
        self.out_channels = w0 + w1b + w2b + w3b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1
        )


def scaled_channels(channels: int, width: float) -> int:
    """Channel count of a ``width`` variant; exact at width 1.0."""
    return max(1, round(channels * width))


class InceptionI3d(nn.Module):
    """I3D classifier: ``(N, 3, T, 224, 224)`` clips in [-1, 1] to logits ``(N, C, T/8 - 1)``."""

    def __init__(self, num_classes: int, width: float = 1.0, in_channels: int = 3) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if not 0 < width <= 4:
            raise ValueError(f"width must be in (0, 4], got {width}")
        self.num_classes = num_classes
        self.width = width

        def ch(c: int) -> int:
            return scaled_channels(c, width)

        self.Conv3d_1a_7x7 = Unit3D(in_channels, ch(64), kernel=(7, 7, 7), stride=(2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(ch(64), ch(64))
        self.Conv3d_2c_3x3 = Unit3D(ch(64), ch(192), kernel=(3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        channels = ch(192)
        for name in ("Mixed_3b", "Mixed_3c"):
            channels = self._add_inception(name, channels)
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            channels = self._add_inception(name, channels)
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        for name in ("Mixed_5b", "Mixed_5c"):
            channels = self._add_inception(name, channels)
        self.avg_pool = nn.AvgPool3d(kernel_size=(2, 7, 7), stride=(1, 1, 1))
        self.dropout = nn.Dropout(0.5)
        self.logits = Unit3D(channels, num_classes, batch_norm=False, relu=False, bias=True)
        self.feature_channels = channels

    def _add_inception(self, name: str, in_channels: int) -> int:
        widths = tuple(scaled_channels(c, self.width) for c in _INCEPTION_BLOCKS[name])
        module = InceptionModule(in_channels, widths)
        self.add_module(name, module)
        return module.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.children():
            if module is self.avg_pool:
                break
            x = module(x)
        x = self.logits(self.dropout(self.avg_pool(x)))
        # flatten, not squeeze: squeeze exports to data-dependent If nodes in ONNX.
        return x.flatten(2)
