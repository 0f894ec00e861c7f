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
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16) and weight.dtype == x.dtype \
            and torch.backends.mkldnn.is_available():
        cl = torch.channels_last_3d
        try:
            return torch.mkldnn_convolution(x.contiguous(memory_format=cl), weight.contiguous(memory_format=cl),
                                            bias, list(padding), [1, 1, 1], [1, 1, 1], groups)
        except (AttributeError, RuntimeError):  # a build without this oneDNN entry point: use conv3d
            pass
    return tf.conv3d(x, weight, bias, padding=padding, groups=groups)


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


class ResBlock(nn.Module):
    """EDSR residual block x + conv(ReLU(conv(x)))."""

    def __init__(self, channels: int, kind: str) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3d(channels, channels, kind=kind), nn.ReLU(inplace=True),
                                  conv3d(channels, channels, kind=kind))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


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
        return h + self.tail(self.body(h))


class _StreamConv:
    """One conv of the encoder run along a z stream: 'valid' along z on [cache | chunk], zero slices standing for the
    'same' padding at the stream's two ends, the last 2r input slices kept for the next chunk."""

    def __init__(self, conv: Conv3d) -> None:
        self.conv, self.r = conv, conv.padding[0]
        self.padding = (0, *conv.padding[1:])
        self.cache: Tensor | None = None

    def _none(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0], self.conv.out_channels, 0, *x.shape[3:])

    def __call__(self, x: Tensor, last: bool) -> Tensor:
        if self.r == 0:
            return self._none(x) if x.shape[2] == 0 else \
                fast_conv3d(x, self.conv.weight, self.conv.bias, self.padding, self.conv.groups)
        zeros = x.new_zeros(*x.shape[:2], self.r, *x.shape[3:])
        parts = [zeros if self.cache is None else self.cache, x] + ([zeros] if last else [])
        inp = torch.cat(parts, dim=2)
        if inp.shape[2] < 2 * self.r + 1:  # not enough slices for one output yet: keep them all
            self.cache = inp
            return self._none(x)
        self.cache = inp[:, :, -2 * self.r:]
        return fast_conv3d(inp, self.conv.weight, self.conv.bias, self.padding, self.conv.groups)


class _StreamResidual:
    """``x + body(x)`` along a z stream: the body lags behind its input, so the skip is held back to match."""

    def __init__(self, body) -> None:
        self.body, self.queue = body, None

    def __call__(self, x: Tensor, last: bool) -> Tensor:
        self.queue = x if self.queue is None else torch.cat([self.queue, x], dim=2)
        main = self.body(x, last)
        n = main.shape[2]
        out = self.queue[:, :, :n] + main
        self.queue = self.queue[:, :, n:]
        return out


def _stream_sequence(module: nn.Module):
    """The stream form of an encoder part: convs, ReLUs, factorised pairs, residual blocks, in order."""
    if isinstance(module, Conv3d):
        return _StreamConv(module)
    if isinstance(module, nn.ReLU):
        return lambda x, last: torch.relu(x)
    if isinstance(module, ResBlock):
        return _StreamResidual(_stream_sequence(module.body))
    if isinstance(module, nn.Sequential):
        steps = [_stream_sequence(m) for m in module]

        def run(x: Tensor, last: bool) -> Tensor:
            for step in steps:
                x = step(x, last)
            return x

        return run
    raise TypeError(f"no stream form for {type(module).__name__}")


class StreamingEncoder:
    """The encoder fed slice chunks in order along z (B, 1, z, Y, X), returning each slice's features once, exactly
    as :meth:`Encoder.forward` on the whole stack would (zero padding at the stack's two ends), so a caller that walks
    a long column in windows never encodes a slice twice. Outputs lag the inputs by the encoder's z radius; the last
    push (``last=True``) flushes the rest.

    Example:
        >>> enc = Encoder(8, 1, "factorised").eval()
        >>> y = torch.rand(1, 1, 12, 16, 16)
        >>> stream = StreamingEncoder(enc)
        >>> parts = [stream.push(y[:, :, :5]), stream.push(y[:, :, 5:], last=True)]
        >>> torch.allclose(torch.cat(parts, dim=2), enc(y), atol=1e-5)
        True
    """

    def __init__(self, encoder: Encoder) -> None:
        self.head = _StreamConv(encoder.head)
        self.rest = _StreamResidual(_stream_sequence(nn.Sequential(encoder.body, encoder.tail)))

    def push(self, y: Tensor, last: bool = False) -> Tensor:
        h = self.head(y - 0.5, last).contiguous(memory_format=torch.channels_last_3d)
        return self.rest(h, last)
