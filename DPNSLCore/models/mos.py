"""Mixture-of-Splines upsampler (DESIGN.md section 3) and its trilinear ablation.

Each expert e (B-spline degree d_e) predicts per LR voxel M^3 coefficients and 3*M knots; M dilations
per axis come from a bias-free linear map of the cell vector (1/s, 1, 1) (HR step in LR voxels).
For an HR query q with nearest LR slice c: rel = (q - c + offset) per axis in LR units (in-plane the
grids coincide, so rel = offset), basis_{a,m} = beta_d(dilation_{a,m} * (rel_a - knot_{a,m})), the 3D
basis is the outer product over the axes, multiplied with the coefficients of c and mapped M^3 -> C by a
1x1x1 conv. A router mixes the experts (softmax, or hard Gumbel), then a 1x1x1 conv.

Two evaluation paths give the same function:

- full (``head_resolution="hr"``, the paper): offsets and router logits come from convs on linearly
  z-upsampled features at every HR voxel; the M^3 outer product is formed at HR (GPU-sized).
- separable (``head_resolution="lr"``): offsets and router run on the LR grid (offsets taken from the
  nearest LR slice, router probabilities linearly interpolated along z). Then the in-plane bases
  depend on LR quantities only, and by linearity
  ``W (coef * bz (x) by (x) bx) = sum_i bz_i * G_i`` with ``G_i = sum_jk W[:, ijk] coef_ijk by_j bx_k``
  computed on the LR grid. The trailing 1x1x1 convs (mixing conv, decoder expansion) are folded into G,
  so per HR voxel only E*M z-basis values and an E*M-term weighted sum of C-vectors remain.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as tf

from ..ops.splines import bspline
from .config import ModelConfig
from .encoder import Conv3d, conv_stack, fast_conv3d, pointwise_conv3d
from .zgrid import check_positions, lerp_z, nearest_cells, runs

_SOFTPLUS_ONE = 0.5413  # softplus(0.5413) ~= 1


def compose_pointwise(convs: list[nn.Conv3d]) -> tuple[Tensor, Tensor]:
    """Weight (C_out, C_in) and bias (C_out,) of a chain of 1x1x1 convs applied in list order."""
    weight = convs[0].weight.flatten(1)
    bias = convs[0].bias
    for conv in convs[1:]:
        w = conv.weight.flatten(1)
        weight, bias = w @ weight, w @ bias + conv.bias
    return weight, bias


class SplineExpert(nn.Module):
    """One spline expert: coefficient/knot head on LR features, dilations, M^3 -> C projection."""

    def __init__(self, in_channels: int, out_channels: int, degree: int, n_basis: int, kernel: int) -> None:
        super().__init__()
        self.degree, self.n_basis = degree, n_basis
        m = n_basis
        self.head = Conv3d(in_channels, m ** 3 + 3 * m, kernel, padding=kernel // 2)
        self.dilation = nn.Linear(3, 3 * m, bias=False)
        self.project = Conv3d(m ** 3, out_channels, 1)
        with torch.no_grad():  # knots spread over [-1/2, 1/2], dilations ~ 1 at x2..x4
            self.head.bias[m ** 3:].copy_(torch.linspace(-0.5, 0.5, m).repeat(3))
            self.dilation.weight.normal_(0.0, 0.05)
            self.dilation.weight[:m, 0] += 2.0
            self.dilation.weight[m:, 1:] += _SOFTPLUS_ONE / 2

    def coefficients_and_knots(self, head: Tensor) -> tuple[Tensor, Tensor]:
        """Split the head output (B, M^3 + 3M, Z, Y, X) into (B, M^3, Z, Y, X) coefficients and
        (B, 3, M, Z, Y, X) knots (axes z, y, x)."""
        m = self.n_basis
        coef, knots = head.contiguous().split([m ** 3, 3 * m], dim=1)
        return coef, knots.unflatten(1, (3, m))

    def dilations(self, scale: float, like: Tensor) -> Tensor:
        """(3, M) positive dilations from the cell vector (1/scale, 1, 1)."""
        cell = torch.tensor([1.0 / scale, 1.0, 1.0], dtype=like.dtype, device=like.device)
        return tf.softplus(self.dilation(cell)).view(3, self.n_basis)

    def evaluate(self, coef: Tensor, knots: Tensor, rel: Tensor, dil: Tensor) -> Tensor:
        """Full evaluation at HR: coef (B, M^3, n, Y, X), knots (B, 3, M, n, Y, X), rel (B, 3, n, Y, X)."""
        m = self.n_basis
        basis = bspline(dil.view(1, 3, m, 1, 1, 1) * (rel.unsqueeze(2) - knots), self.degree)
        bz, by, bx = basis.unbind(1)
        outer = bz[:, :, None, None] * by[:, None, :, None] * bx[:, None, None, :]
        return self.project(outer.flatten(1, 3) * coef)

    def separable_terms(self, coef: Tensor, knots: Tensor, offset: Tensor, dil: Tensor,
                        weight: Tensor) -> tuple[Tensor, Tensor]:
        """LR-grid factors of the separable path.

        Args:
            coef: (B, M^3, Z, Y, X); knots: (B, 3, M, Z, Y, X); offset: (B, 3, Z, Y, X) LR offsets;
            dil: (3, M); weight: (C, M^3) projection weight (already composed with later 1x1x1 convs).

        Returns:
            G (B, M, C, Z, Y, X) and v (B, M, Z, Y, X) with the z-basis at HR delta being
            beta_d(v + dil_z * delta).
        """
        m = self.n_basis
        b, _, z, y, x = coef.shape
        inplane = bspline(dil[1:].view(1, 2, m, 1, 1, 1) * (offset[:, 1:].unsqueeze(2) - knots[:, 1:]),
                          self.degree)
        by, bx = inplane.unbind(1)
        prod = coef.view(b, m, m, m, z, y, x) * (by[:, None, :, None] * bx[:, None, None, :])
        # G_i = W[:, i] (C x M^2) @ prod_i (M^2 x ZYX): one batched matmul over i
        w = weight.view(-1, m, m * m).transpose(0, 1)
        g = torch.matmul(w, prod.reshape(b, m, m * m, z * y * x)).view(b, m, -1, z, y, x)
        v = dil[0].view(1, m, 1, 1, 1) * (offset[:, :1] - knots[:, 0])
        return g, v


def route(logits: Tensor, mode: str, training: bool) -> Tensor:
    """Router weights over experts (dim 1): softmax, or hard Gumbel (one-hot argmax in eval)."""
    if mode == "soft":
        return torch.softmax(logits, dim=1)
    if training:
        return tf.gumbel_softmax(logits, tau=1.0, hard=True, dim=1)
    return tf.one_hot(logits.argmax(1), logits.shape[1]).movedim(-1, 1).to(logits.dtype)


class MixtureOfSplines(nn.Module):
    """LR features (B, C, Z, Y, X) -> HR features (B, C', n_hr, Y, X) and routing (B, E, n_hr, Y, X).

    Set the attribute ``separable = False`` to force the full path in ``head_resolution="lr"`` mode
    (same function, slower; used by the tests).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c, k = cfg.features, cfg.head_kernel
        self.head_resolution, self.router_mode, self.separable = cfg.head_resolution, cfg.router, True
        trunk: list[nn.Module] = []
        for _ in range(cfg.head_layers - 1):
            trunk += [Conv3d(c, c, k, padding=k // 2), nn.ReLU(inplace=True)]
        self.trunk = nn.Sequential(*trunk)
        self.experts = nn.ModuleList(SplineExpert(c, cfg.mos_features, d, cfg.n_basis, k) for d in cfg.degrees)
        self.offset = conv_stack(c, cfg.context_features, 3, cfg.offset_layers, k)
        n_experts = len(cfg.degrees)
        self.router = conv_stack(c, cfg.context_features, n_experts, cfg.router_layers, k) if n_experts > 1 else None
        self.mix = Conv3d(cfg.mos_features, cfg.mos_features, 1)
        r = k // 2
        self.radius = max(cfg.head_layers * r, cfg.offset_layers * r, cfg.router_layers * r)
        self.z_radius = self.radius + 1

    def forward(self, feat: Tensor, hr_positions: Tensor, scale: float,
                post: nn.Conv3d | None = None) -> tuple[Tensor, Tensor]:
        """Upsample `feat` to the HR slices; `post` is an optional 1x1x1 conv applied to the output."""
        positions = check_positions(hr_positions, feat.shape[-3])
        dils = [e.dilations(scale, feat) for e in self.experts]
        if self.head_resolution == "hr":
            trunk = self.trunk(feat)
            heads = [e.coefficients_and_knots(e.head(trunk)) for e in self.experts]
            context = lerp_z(feat, positions)
            offset = torch.tanh(self.offset(context))
            probs = self._route(self.router(context) if self.router is not None else None, context)
            return self._full(heads, dils, offset, probs, positions, post), probs
        heads, offset, logits = self._lr_heads(feat)
        offset = torch.tanh(offset)
        index = nearest_cells(positions, feat.shape[-3], feat.dtype)[0].to(feat.device)
        probs = self._route(logits, feat)
        # soft weights vary linearly between LR slices; hard (one-hot) ones are taken from the nearest
        probs = lerp_z(probs, positions) if self.router_mode == "soft" else probs.index_select(2, index)
        if self.separable:
            return self._separable(heads, dils, offset, probs, positions, post), probs
        offset = offset.index_select(2, index)
        return self._full(heads, dils, offset, probs, positions, post), probs

    def _lr_heads(self, feat: Tensor) -> tuple[list, Tensor, Tensor | None]:
        """Expert heads, raw offsets and router logits on the LR grid (one fused conv when possible)."""
        router = self.router
        single = len(self.trunk) == 0 and len(self.offset) == 1 and (router is None or len(router) == 1)
        if not single:
            trunk = self.trunk(feat)
            heads = [e.coefficients_and_knots(e.head(trunk)) for e in self.experts]
            return heads, self.offset(feat), router(feat) if router is not None else None
        convs = [e.head for e in self.experts] + [self.offset[0]] + ([router[0]] if router is not None else [])
        weight = torch.cat([c.weight for c in convs])
        bias = torch.cat([c.bias for c in convs])
        if convs[0].kernel_size == (1, 1, 1):
            out = pointwise_conv3d(feat, weight, bias)
        else:
            out = fast_conv3d(feat, weight, bias, convs[0].padding).contiguous()
        parts = out.split([c.out_channels for c in convs], dim=1)
        n = len(self.experts)
        heads = [e.coefficients_and_knots(part) for e, part in zip(self.experts, parts[:n], strict=True)]
        return heads, parts[n], parts[n + 1] if router is not None else None

    def _route(self, logits: Tensor | None, like: Tensor) -> Tensor:
        if logits is None:  # a single expert: weight 1 everywhere
            return like.new_ones(like.shape[0], 1, *like.shape[2:])
        return route(logits, self.router_mode, self.training)

    def _full(self, heads: list, dils: list, offset: Tensor, probs: Tensor, positions: Tensor,
              post: nn.Conv3d | None) -> Tensor:
        index, delta = nearest_cells(positions, heads[0][0].shape[-3], offset.dtype)
        index, delta = index.to(offset.device), delta.to(offset.device)
        rel = torch.cat([offset[:, :1] + delta.view(1, 1, -1, 1, 1), offset[:, 1:]], dim=1)
        mixed = None
        for e, (expert, (coef, knots), dil) in enumerate(zip(self.experts, heads, dils, strict=True)):
            out = expert.evaluate(coef.index_select(2, index), knots.index_select(3, index), rel, dil)
            term = probs[:, e:e + 1] * out
            mixed = term if mixed is None else mixed + term
        out = self.mix(mixed)
        return post(out) if post is not None else out

    def _separable(self, heads: list, dils: list, offset: Tensor, probs: Tensor, positions: Tensor,
                   post: nn.Conv3d | None) -> Tensor:
        index, delta = nearest_cells(positions, offset.shape[-3], offset.dtype)
        delta = delta.to(offset.device)
        tail = [self.mix] + ([post] if post is not None else [])
        terms = []
        for expert, (coef, knots), dil in zip(self.experts, heads, dils, strict=True):
            weight, bias = compose_pointwise([expert.project] + tail)
            g, v = expert.separable_terms(coef, knots, offset, dil, weight)
            terms.append((expert.degree, g, v, dil[0].view(1, -1, 1, 1, 1), bias.view(1, -1, 1, 1, 1)))
        # standard layout throughout (rows contiguous: broadcasting a per-voxel weight over the channels stays
        # vectorised); the router-weighted z-bases of every HR slice are evaluated once per expert, not per slice run
        index, probs = index.to(offset.device), probs.contiguous()
        weights = [(bspline(v.index_select(2, index) + dz * delta.view(1, 1, -1, 1, 1), degree)
                    * probs[:, e:e + 1]).contiguous() for e, (degree, _, v, dz, _) in enumerate(terms)]
        return _SeparableMix.apply(runs(index), probs, len(terms), *weights, *(t[1] for t in terms),
                                   *(t[4] for t in terms))


class _SeparableMix(torch.autograd.Function):
    """out[:, :, h] = sum_e probs_e[h] bias_e + sum_e sum_i weights_e[i, h] G_e[i, :, cell(h)], run by run of HR
    slices sharing an LR cell, summed in place; the backward is written out the same way.

    Autograd through the per-run slices of the forward zero-filled and copied whole gradients for every slice (a
    training step's upsampler spent more time there than in its arithmetic); here each run's gradient is a few
    products and sums of that run's own slices (the lean upsampler's forward + backward on a training batch of 8:
    105-119 ms -> 67-70 ms on 2 cores).
    Inputs: ``runs`` [(start, stop, cell)], probs (B, E, n_hr, Y, X), then E weights (B, M, n_hr, Y, X), E factors
    G (B, M, C, Z, Y, X) and E biases (1, C, 1, 1, 1). Output (B, C, n_hr, Y, X).
    """

    @staticmethod
    def forward(ctx, runs_: list, probs: Tensor, n: int, *tensors: Tensor) -> Tensor:  # noqa: D102
        weights, gs, biases = tensors[:n], tensors[n:2 * n], tensors[2 * n:]
        b, _, n_hr, y, x = probs.shape
        out = probs.new_empty(b, gs[0].shape[2], n_hr, y, x)
        for start, stop, j in runs_:
            acc = out[:, :, start:stop]
            for e in range(n):
                w = probs[:, e:e + 1, start:stop]
                if e == 0:
                    torch.mul(w, biases[e], out=acc)
                else:
                    acc.addcmul_(w, biases[e])
                a = weights[e][:, :, start:stop]
                for i in range(a.shape[1]):
                    acc.addcmul_(a[:, i:i + 1], gs[e][:, i, :, j:j + 1])
        ctx.runs, ctx.n = runs_, n
        ctx.save_for_backward(probs, *tensors)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        n = ctx.n
        grad = grad.contiguous()  # the decoder hands it back channels-last: per-run products are slow on that layout
        probs, *tensors = ctx.saved_tensors
        weights, gs, biases = tensors[:n], tensors[n:2 * n], tensors[2 * n:]
        need = ctx.needs_input_grad
        g_probs = torch.zeros_like(probs) if need[1] else None
        g_weights = [torch.zeros_like(w) if need[3 + e] else None for e, w in enumerate(weights)]
        g_gs = [torch.zeros_like(g) if need[3 + n + e] else None for e, g in enumerate(gs)]
        g_biases = [torch.zeros_like(bias) if need[3 + 2 * n + e] else None for e, bias in enumerate(biases)]
        for start, stop, j in ctx.runs:
            run = grad[:, :, start:stop]  # (B, C, L, Y, X)
            for e in range(n):
                if g_probs is not None:
                    g_probs[:, e:e + 1, start:stop] = (run * biases[e]).sum(1, keepdim=True)
                if g_biases[e] is not None:
                    g_biases[e] += (run * probs[:, e:e + 1, start:stop]).sum((0, 2, 3, 4), keepdim=True)
                a = weights[e][:, :, start:stop]
                for i in range(a.shape[1]):
                    factor = gs[e][:, i, :, j:j + 1]  # (B, C, 1, Y, X)
                    if g_weights[e] is not None:
                        g_weights[e][:, i:i + 1, start:stop] = (run * factor).sum(1, keepdim=True)
                    if g_gs[e] is not None:
                        g_gs[e][:, i, :, j:j + 1] += (run * a[:, i:i + 1]).sum(2, keepdim=True)
        return None, g_probs, None, *g_weights, *g_gs, *g_biases


class TrilinearUpsampler(nn.Module):
    """Ablation: 1x1x1 conv C -> C' on the LR grid, then linear interpolation along z; routing = 1."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.project = Conv3d(cfg.features, cfg.mos_features, 1)
        self.radius, self.z_radius = 0, 1

    def forward(self, feat: Tensor, hr_positions: Tensor, scale: float,
                post: nn.Conv3d | None = None) -> tuple[Tensor, Tensor]:
        positions = check_positions(hr_positions, feat.shape[-3])
        weight, bias = compose_pointwise([self.project] + ([post] if post is not None else []))
        lr = fast_conv3d(feat, weight[:, :, None, None, None], bias, (0, 0, 0))
        hr = lerp_z(lr, positions)
        return hr, hr.new_ones(hr.shape[0], 1, *hr.shape[2:])
