"""Pseudo-3D (P3D) convolutions, the stem, and the residual branches.

P3D replaces each 3x3 convolution of a 2D ResNet by a 1x3x3 *spatial*
convolution and a 3x1x1 *temporal* convolution. Three ways to combine them
(the type cycles A, B, C over the whole network; authors' release):

    A (serial):               BN(T(S(x)))                 -> ReLU
    B (parallel):             BN(S(x) + T(x))             -> ReLU
    C (serial with residual): s = ReLU(BN(S(x)));  s + T(s) -> ReLU

``S`` is the 1x3x3 spatial conv (it carries the spatial stride), ``T`` the
3x1x1 temporal conv. In B both convs see the block input, so ``T`` takes the
spatial stride too. Every builder here maps (N, C_in, T, H, W) to
(N, C_out, T, H/s, W/s); ``activate=False`` drops the final ReLU (the last
unit of a residual branch must end in BN, notebooks/PAPER.md).

``Spatial2D`` is the same interface with no temporal conv: a 2D ResNet
applied to every frame (a (1, 3, 3) Conv3d is a 2D conv per frame). LGD-2D
uses it.

All three convs are ``FactorizedConv3d``: an ``nn.Conv3d`` (same weights,
same state-dict keys, same result) computed as a 2D convolution, which is
several times faster on a CPU for short clips (see its docstring).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class FactorizedConv3d(nn.Conv3d):
    """A Conv3d whose kernel is 1 in time or 1x1 in space, computed as a 2D convolution.

    - (1, k, k), the spatial conv: a 2D conv on every frame, (N, C, T, H, W) ->
      (N*T, C, H, W).
    - (k, 1, 1) and 1x1x1: take the spatial stride by slicing (a 1x1 kernel
      reads one pixel), then a 2D conv over (time, flattened space),
      (N, C, T, H*W).

    Why: on a CPU PyTorch picks a conv kernel by the input's shape, and for a
    5D input with few frames and a small batch (N * C * T * H <= 20480, e.g.
    any P3D stage of a 16-frame clip at batch 1) it falls back to the
    unoptimised ``slow_conv3d``; as 2D convs the same work goes to oneDNN.
    The output keeps the input's memory format (contiguous or channels_last_3d;
    with channels_last_3d no copy is made at all).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        kt, kh, kw = self.kernel_size
        if not (kt == 1 and self.stride[0] == 1 and self.padding[0] == 0) and (kh, kw) != (1, 1):
            raise ValueError(f"kernel {self.kernel_size} is neither (1, k, k) nor (k, 1, 1)")
        if self.groups != 1 or self.dilation != (1, 1, 1) or self.padding_mode != "zeros":
            raise ValueError("only plain convolutions (groups=1, dilation=1, zero padding)")

    def forward(self, x: Tensor) -> Tensor:
        n, c, t, h, w = x.shape
        layout = (torch.channels_last_3d if x.is_contiguous(memory_format=torch.channels_last_3d)
                  and not x.is_contiguous() else torch.contiguous_format)
        if self.kernel_size[1:] == (1, 1):                   # time against flattened space
            x = x[:, :, :, ::self.stride[1], ::self.stride[2]]
            h, w = x.shape[3:]
            # -1 for the batch: an exported graph (models.export) keeps the batch size free
            out = F.conv2d(x.reshape(-1, c, t, h * w), self.weight.flatten(3), self.bias,
                           (self.stride[0], 1), (self.padding[0], 0))
            return _in_layout(out.unflatten(3, (h, w)), layout)
        frames = x.transpose(1, 2).reshape(-1, c, h, w)     # every frame on its own
        out = F.conv2d(frames, self.weight.squeeze(2), self.bias, self.stride[1:], self.padding[1:])
        return _in_layout(out.unflatten(0, (-1, t)).transpose(1, 2), layout)


def _in_layout(x: Tensor, layout) -> Tensor:
    """``x`` in ``layout`` (the plain contiguous one without naming it: ONNX export knows no memory formats)."""
    return x.contiguous() if layout == torch.contiguous_format else x.contiguous(memory_format=layout)


def spatial_conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv3d:
    """1x3x3 convolution with spatial stride: a 2D 3x3 conv on every frame."""
    return FactorizedConv3d(in_channels, out_channels, (1, 3, 3), stride=(1, stride, stride),
                            padding=(0, 1, 1), bias=False)


def temporal_conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv3d:
    """3x1x1 convolution over time (spatial stride only used by P3D-B)."""
    return FactorizedConv3d(in_channels, out_channels, (3, 1, 1), stride=(1, stride, stride),
                            padding=(1, 0, 0), bias=False)


def pointwise_conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv3d:
    """1x1x1 convolution (bottleneck reduce/expand, shortcut projection)."""
    return FactorizedConv3d(in_channels, out_channels, 1, stride=(1, stride, stride), bias=False)


class P3DA(nn.Module):
    """P3D-A, serial: ReLU(BN(T(S(x))))."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, activate: bool = True):
        super().__init__()
        self.spatial = spatial_conv(in_channels, out_channels, stride)
        self.temporal = temporal_conv(out_channels, out_channels)
        self.bn = nn.BatchNorm3d(out_channels)
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn(self.temporal(self.spatial(x)))
        return out.relu_() if self.activate else out


class P3DB(nn.Module):
    """P3D-B, parallel: ReLU(BN(S(x) + T(x))); T takes the spatial stride too."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, activate: bool = True):
        super().__init__()
        self.spatial = spatial_conv(in_channels, out_channels, stride)
        self.temporal = temporal_conv(in_channels, out_channels, stride)
        self.bn = nn.BatchNorm3d(out_channels)
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn(self.spatial(x) + self.temporal(x))
        return out.relu_() if self.activate else out


class P3DC(nn.Module):
    """P3D-C, serial with a residual: s = ReLU(BN(S(x))); ReLU(s + T(s))."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, activate: bool = True):
        super().__init__()
        self.spatial = spatial_conv(in_channels, out_channels, stride)
        self.bn = nn.BatchNorm3d(out_channels)
        self.temporal = temporal_conv(out_channels, out_channels)
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        s = self.bn(self.spatial(x)).relu_()
        out = s + self.temporal(s)
        return out.relu_() if self.activate else out


class Spatial2D(nn.Module):
    """No temporal conv: ReLU(BN(S(x))), a 2D 3x3 conv applied to every frame."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, activate: bool = True):
        super().__init__()
        self.spatial = spatial_conv(in_channels, out_channels, stride)
        self.bn = nn.BatchNorm3d(out_channels)
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn(self.spatial(x))
        return out.relu_() if self.activate else out


P3D_CYCLE = (P3DA, P3DB, P3DC)


def p3d_unit(block_index: int):
    """The P3D builder for the network's ``block_index``-th residual block (A, B, C, A, ...)."""
    return P3D_CYCLE[block_index % len(P3D_CYCLE)]


class Stem(nn.Module):
    """Conv (t, 7, 7) with stride (t, 2, 2), BN, ReLU, then max-pool (1, 3, 3) stride (1, 2, 2).

    The release uses t = 4 (a 16-frame clip keeps 4 temporal positions in every
    stage). (N, C_in, T, H, W) -> (N, C, T/t, H/4, W/4); C_in is 3 for RGB, 2 for optical flow.
    """

    def __init__(self, out_channels: int = 64, temporal_stride: int = 4, in_channels: int = 3):
        super().__init__()
        self.temporal_stride = temporal_stride
        self.conv = nn.Conv3d(in_channels, out_channels, (temporal_stride, 7, 7), stride=(temporal_stride, 2, 2),
                              padding=(0, 3, 3), bias=False)
        self.bn = nn.BatchNorm3d(out_channels)
        self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn(self.conv(x)).relu_()
        exporting = torch.onnx.is_in_onnx_export()
        if x.device.type == "cpu" and not x.requires_grad and x.is_contiguous() and not exporting:
            # PyTorch's CPU max-pool is 4 to 6x faster on channels_last_3d than on a contiguous map (the copies
            # both ways included), with the same maxima; for training, its backward is slower that way.
            return self.pool(x.contiguous(memory_format=torch.channels_last_3d)).contiguous()
        if x.is_cuda and torch.are_deterministic_algorithms_enabled():
            return self.pool_frames(x)
        return self.pool(x)

    def pool_frames(self, x: Tensor) -> Tensor:
        """The same max-pool as a 2D max-pool over every frame (the kernel is 1 frame deep): the same maxima, and
        on CUDA a deterministic backward (the 3D one adds overlapping windows' gradients atomically, in no fixed
        order). Used when deterministic algorithms are asked for (``run.deterministic``)."""
        n, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(n * t, c, h, w)       # a view when x is channels_last_3d
        out = F.max_pool2d(frames, self.pool.kernel_size[1:], self.pool.stride[1:], self.pool.padding[1:])
        return out.reshape(n, t, c, *out.shape[-2:]).transpose(1, 2)


class Bottleneck(nn.Module):
    """Residual branch F of ResNet-50/101: 1x1x1 -> P3D unit -> 1x1x1, ending in BN.

    (N, C_in, T, H, W) -> (N, 4 * planes, T, H/s, W/s). No final ReLU: the LGD
    block adds the shortcut (and the global-to-local term) first.
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int, unit):
        super().__init__()
        self.conv1 = pointwise_conv(in_channels, planes)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = unit(planes, planes, stride)
        self.conv3 = pointwise_conv(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x)).relu_()
        return self.bn3(self.conv3(self.conv2(out)))


class BasicBlock(nn.Module):
    """Residual branch F of ResNet-18/34: two P3D units, the second ending in BN.

    The project's own choice, used only by the teaching models: both units are the same P3D units as in the
    bottleneck network. The release's basic-block LGD code differs in its second units (its P3D-B continues
    the temporal path from before BN; its P3D-C has no ReLU after BN) and trains no such network
    (``notebooks/PAPER.md``).
    """

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int, unit):
        super().__init__()
        self.conv1 = unit(in_channels, planes, stride)
        self.conv2 = unit(planes, planes, 1, activate=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.conv1(x))


class Shortcut(nn.Module):
    """Projection shortcut S: 1x1x1 conv with spatial stride, then BN."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv = pointwise_conv(in_channels, out_channels, stride)
        self.bn = nn.BatchNorm3d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))
