"""3D EDSR encoder of the LR window and the small conv stacks shared by the other parts."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as tf


def fast_conv3d(x: Tensor, weight: Tensor, bias: Tensor | None, padding: tuple[int, ...],
                groups: int = 1) -> Tensor:
    """Stride-1 3D convolution; float32 CPU tensors go straight to oneDNN.

    torch.nn.functional.conv3d picks its slow reference kernel for batch 1 when N*C*Z*Y is small
    (a heuristic written for 2D), which is 2-3x slower for the thin bands used at inference; calling
    oneDNN directly avoids that (autograd supported). A bfloat16 input runs the conv in bfloat16 (weights cast per
    call): 1.66x faster on a CPU with AVX512-BF16 for the encoder's factorised convs. Other devices and dtypes use
    conv3d.
    """
    if x.dtype == torch.bfloat16 and weight.dtype != torch.bfloat16:  # a reduced-precision pass (the encoder's)
        weight, bias = weight.to(torch.bfloat16), None if bias is None else bias.to(torch.bfloat16)
    if weight.shape[2:] == (1, 1, 1) and groups == 1 and x.device.type == "cpu":
        return _pointwise_in_layout(x, weight, bias)
    if _depthwise_on_cpu(x, weight, padding, groups) and torch.is_grad_enabled() \
            and (x.requires_grad or weight.requires_grad):
        return _DepthwiseConv3d.apply(x, weight, bias, tuple(padding))
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16) and weight.dtype == x.dtype \
            and torch.backends.mkldnn.is_available():
        try:
            return _mkldnn_conv(x, weight, bias, padding, groups)
        except (AttributeError, RuntimeError):  # a build without this oneDNN entry point: use conv3d
            pass
    return tf.conv3d(x, weight, bias, padding=padding, groups=groups)


def _depthwise_on_cpu(x: Tensor, weight: Tensor, padding: tuple[int, ...], groups: int) -> bool:
    """A float32 CPU depthwise conv (one filter per channel) with odd kernels and same padding."""
    return x.device.type == "cpu" and x.dtype == torch.float32 == weight.dtype and groups > 1 \
        and weight.shape[0] == groups == x.shape[1] and weight.shape[1] == 1 \
        and all(k % 2 == 1 and p == k // 2 for k, p in zip(weight.shape[2:], padding, strict=True)) \
        and torch.backends.mkldnn.is_available()


class _DepthwiseConv3d(torch.autograd.Function):
    """Depthwise same-padded conv whose input gradient is the forward conv with the kernel flipped.

    oneDNN's backward of a depthwise 3D conv is slow for the input gradient: on the decoder's 4-channel branch of a
    training batch (8 x 4 x 20 x 59 x 59) 19.8 ms, against 6.2 ms for the same gradient as a forward conv (the
    transposed stride-1 same-padded correlation); the weight and bias gradients stay oneDNN's (10.7 ms).
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, padding: tuple[int, ...]) -> Tensor:  # noqa: D102
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.has_bias = padding, bias is not None
        return _mkldnn_conv(x, weight, bias, padding, weight.shape[0])

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        x, weight = ctx.saved_tensors
        groups = weight.shape[0]
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = _mkldnn_conv(grad, weight.flip(2, 3, 4), None, ctx.padding, groups)
        if ctx.needs_input_grad[1] or (ctx.has_bias and ctx.needs_input_grad[2]):
            cl = torch.channels_last_3d
            mask = [False, ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
            _, grad_w, grad_b = torch.ops.aten.convolution_backward(
                grad.contiguous(memory_format=cl), x.contiguous(memory_format=cl), weight,
                [groups] if ctx.has_bias else None, [1, 1, 1], list(ctx.padding), [1, 1, 1], False, [0, 0, 0],
                groups, mask)
        return grad_x, grad_w, grad_b, None


def _mkldnn_conv(x: Tensor, weight: Tensor, bias: Tensor | None, padding: tuple[int, ...], groups: int) -> Tensor:
    """oneDNN's stride-1 3D convolution on channels-last operands (the layout it computes in)."""
    cl = torch.channels_last_3d
    return torch.mkldnn_convolution(x.contiguous(memory_format=cl), weight.contiguous(memory_format=cl), bias,
                                    list(padding), [1, 1, 1], [1, 1, 1], groups)


def _pointwise_in_layout(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """A 1x1x1 convolution as one matrix product in the layout ``x`` already has (channels-last stays channels-last,
    anything else gives channels-first): no layout conversion. On the decoder's last conv (8 -> 1 channel, 160 x 8
    x 238 voxels) 0.3 ms against 1.5 ms for oneDNN, which first converts its input to channels-last."""
    w = weight.flatten(1)  # (out, in)
    if x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous():
        return tf.linear(x.permute(0, 2, 3, 4, 1), w, bias).permute(0, 4, 1, 2, 3)
    b, c, *spatial = x.shape
    out = torch.matmul(w, x.reshape(b, c, -1))
    if bias is not None:
        out = out + bias.view(1, -1, 1)
    return out.view(b, -1, *spatial)


def pointwise_conv3d(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """1x1x1 convolution as one GEMM per batch item, returning a channels-first contiguous tensor.

    Used for the LR heads whose many output channels are consumed channel by channel: a oneDNN conv
    would return channels-last and the transpose to channels-first costs more than the conv.
    """
    b, c, *spatial = x.shape
    flat = x.contiguous().view(b, c, -1)
    out = torch.baddbmm(bias.view(1, -1, 1), weight.flatten(1).expand(b, -1, -1), flat)
    return out.view(b, -1, *spatial)


class Conv3d(nn.Conv3d):
    """nn.Conv3d (stride 1, zero padding) evaluated with `fast_conv3d`; same parameters and state dict."""

    def forward(self, x: Tensor) -> Tensor:
        return fast_conv3d(x, self.weight, self.bias, self.padding, self.groups)


def conv3d(in_channels: int, out_channels: int, kernel: int = 3, *, kind: str = "full") -> nn.Module:
    """A same-padded 3D conv: kernel^3 ("full") or 1 x k x k followed by k x 1 x 1 ("factorised").

    The factorised form has k^2 + k taps instead of k^3 (12 instead of 27 for k = 3) and the same
    receptive field; both keep the spatial size.
    """
    pad = kernel // 2
    if kind == "full" or kernel == 1:
        return Conv3d(in_channels, out_channels, kernel, padding=pad)
    if kind == "factorised":
        return nn.Sequential(
            Conv3d(in_channels, out_channels, (1, kernel, kernel), padding=(0, pad, pad)),
            Conv3d(out_channels, out_channels, (kernel, 1, 1), padding=(pad, 0, 0)),
        )
    raise ValueError(f"`kind` must be 'full' or 'factorised', got {kind!r}.")


def conv_stack(in_channels: int, hidden: int, out_channels: int, layers: int, kernel: int) -> nn.Sequential:
    """`layers` convs (ReLU between) in -> hidden -> ... -> out; receptive radius layers * (kernel // 2)."""
    widths = [in_channels] + [hidden] * (layers - 1) + [out_channels]
    modules: list[nn.Module] = []
    for i in range(layers):
        if i:
            modules.append(nn.ReLU(inplace=True))
        modules.append(Conv3d(widths[i], widths[i + 1], kernel, padding=kernel // 2))
    return nn.Sequential(*modules)


def run_flat(layers: nn.Module, x: Tensor) -> Tensor:
    """``layers(x)`` with nested Sequentials run leaf by leaf: each intermediate map is freed as soon as the next one
    exists. Calling a nested Sequential keeps its input alive in the caller until it returns, one map more at the
    encoder's peak (a 236 x 236 window reading 44 slices, float32: 794 MB live against 637 MB). Same operations in
    the same order, the same result; a module that is not a Sequential is simply called."""
    if not isinstance(layers, nn.Sequential):
        return layers(x)
    for layer in layers:
        if isinstance(layer, nn.Sequential):
            for inner in layer:  # one level: what conv3d builds
                x = inner(x)
        else:
            x = layer(x)
    return x


class ResBlock(nn.Module):
    """EDSR residual block x + conv(ReLU(conv(x)))."""

    def __init__(self, channels: int, kind: str) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3d(channels, channels, kind=kind), nn.ReLU(inplace=True),
                                  conv3d(channels, channels, kind=kind))

    def forward(self, x: Tensor) -> Tensor:
        return run_flat(self.body, x).add_(x)  # in place on the body's fresh output: one map fewer alive, the same sum


class Encoder(nn.Module):
    """3D EDSR: head conv, `blocks` residual blocks, tail conv, global skip (DESIGN.md section 3).

    Args:
        features: channels C.
        blocks: number of residual blocks.
        kind: "full" (3x3x3) or "factorised" (1x3x3 then 3x1x1) convs.

    Input (B, 1, Z, Y, X) intensities in [0, 1]; output (B, C, Z, Y, X) LR features.
    """

    def __init__(self, features: int, blocks: int, kind: str = "full") -> None:
        super().__init__()
        self.head = conv3d(1, features, kind="full")
        self.body = nn.Sequential(*[ResBlock(features, kind) for _ in range(blocks)])
        self.tail = conv3d(features, features, kind=kind)
        self.radius = 2 + 2 * blocks  # voxels, in-plane and along z (LR slices)

    def forward(self, y: Tensor) -> Tensor:
        h = self.head(y - 0.5).contiguous(memory_format=torch.channels_last_3d)
        return run_flat(self.tail, self.body(h)).add_(h)
