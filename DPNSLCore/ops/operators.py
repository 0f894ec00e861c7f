"""Slice-axis acquisition operators A, their exact pseudo-inverses, and the measurement-consistent projection.

The HR grid and scale rules (``hr_length``, ``check_scale``) live in :mod:`DPNSLCore.ops.grid`.

Kinds of acquisition (rows of A act on each (y, x) column independently):

- ``decimate`` (paper): integer scale, keep every s-th HR slice.
- ``sample``: any real scale > 1; observed slice j linearly interpolates the HR neighbours of ``j * scale``.
- ``profile``: thick slices; slice j is the average of the (piecewise-linear) HR signal under a box of width
  ``thickness`` LR spacings (or a Gaussian of that FWHM) centred on ``j * scale``.

A is a small banded (n_lr x n_hr) float64 matrix; its Moore-Penrose pseudo-inverse ``A+ = A^T (A A^T)^-1`` is
formed exactly in float64 (for ``decimate`` it is the zero-pad operator).

Range anchors B (``A B = I``): the linear or cubic interpolator M itself for ``decimate``; for ``sample`` and
``profile`` the consistent spline ``B = M (A M)^-1``, the one spline through the observed positions whose
acquisition gives back y. It is as smooth as M: correcting M with the minimum-norm ``A+`` instead makes the
overlapping-box case oscillate (DESIGN.md section 2; the thick-slice issue measured 11 % of voxels below air).

Null-space projections ``(I - P A)``: ``pinv`` (P = A+, the paper: zero-padding for ``decimate``, which forces the
detail to zero at the acquired slices and leaves a seam there), ``spline`` (P = B, the model's smooth anchor:
the detail goes to zero smoothly at and around the acquired slices, and ``A (I - B A) = 0`` still holds exactly),
``linear`` (P = linear interpolation) and ``none``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .banded import ANCHOR_DENSE_ROWS, DENSE_ROWS, BandedMatrix, band_cholesky, band_cholesky_solve
from .grid import KINDS, PROFILES, check_scale, hr_length, lr_length
from .interpolation import apply_along_slices, bspline_evaluation_matrix, interpolation_matrix

ANCHORS = ("linear", "cubic", "none")
_ANCHOR_DEGREE = {"linear": 1, "cubic": 3}
PROJECTIONS = ("pinv", "spline", "linear", "none")
_ANCHOR_COND_LIMIT = 1e8  # cond(A M) above this: the spline cannot carry y (very wide profile), fall back to A+


def _hat_integral(u: np.ndarray) -> np.ndarray:
    """Antiderivative of the hat function (linear B-spline), 0 at -inf and 1 at +inf."""
    u = np.clip(u, -1.0, 1.0)
    return np.where(u <= 0.0, 0.5 * (u + 1.0) ** 2, 1.0 - 0.5 * (1.0 - u) ** 2)


def _profile_row(center: float, n_hr: int, width: float, profile: str) -> np.ndarray:
    """Weights of HR samples under a slice profile of ``width`` HR steps centred at ``center``."""
    k = np.arange(n_hr, dtype=np.float64)
    if profile == "box":
        row = _hat_integral(center + width / 2 - k) - _hat_integral(center - width / 2 - k)
    else:  # Gaussian of FWHM `width`, convolved with the hat by fine quadrature
        sigma = width / (2.0 * math.sqrt(2.0 * math.log(2.0)))
        z = np.linspace(center - 4 * sigma - 1, center + 4 * sigma + 1, 2048)
        g = np.exp(-0.5 * ((z - center) / sigma) ** 2)
        hat = np.clip(1.0 - np.abs(z[None, :] - k[:, None]), 0.0, None)
        row = (hat * g[None, :]).sum(axis=1)  # uniform grid: the step cancels in the normalisation
    total = row.sum()
    if total <= 0:
        raise ValueError("slice profile does not overlap the HR grid")
    return row / total


def _forward_matrix(kind: str, scale: float, n_lr: int, n_hr: int, profile: str, thickness: float) -> np.ndarray:
    """Build A (n_lr x n_hr) in float64."""
    centers = np.arange(n_lr) * scale
    a = np.zeros((n_lr, n_hr))
    if kind == "profile":
        for j, c in enumerate(centers):
            a[j] = _profile_row(c, n_hr, thickness * scale, profile)
        return a
    base = np.floor(centers + 1e-9).astype(np.int64)
    frac = np.where(np.abs(centers - np.round(centers)) < 1e-9, 0.0, centers - base)
    a[np.arange(n_lr), base] = 1.0 - frac
    inside = frac > 0
    a[np.arange(n_lr)[inside], base[inside] + 1] = frac[inside]
    return a


def _pseudo_inverse(a: np.ndarray) -> np.ndarray:
    """A+ = A^T (A A^T)^-1 in float64; raises when A has (numerically) dependent rows."""
    gram = a @ a.T
    cond = np.linalg.cond(gram)
    if not np.isfinite(cond) or cond > 1e10:
        raise ValueError(
            f"the acquisition operator is ill-conditioned (cond(A A^T) = {cond:.2g}); the slice profile is too "
            "wide for this spacing: reduce `thickness` or the scale"
        )
    return np.linalg.solve(gram, a).T


@dataclass(frozen=True)
class Degradation:
    """Acquisition along the slice axis: y = A x. Build with :func:`make_degradation`.

    All methods act on axis -3 of tensors of any leading shape, dtype and device; none modifies its input.
    """

    kind: str
    scale: float
    n_lr: int
    n_hr: int
    profile: str = "box"
    thickness: float = 1.0
    matrix: np.ndarray = field(repr=False, compare=False, default=None)  # A, (n_lr, n_hr) float64
    pinv_matrix: np.ndarray = field(repr=False, compare=False, default=None)  # A+, (n_hr, n_lr)
    linear_matrix: np.ndarray = field(repr=False, compare=False, default=None)  # L, (n_hr, n_lr)
    _anchors: dict = field(repr=False, compare=False, default_factory=dict)  # kind -> B, built on first use
    _band: dict = field(repr=False, compare=False, default_factory=dict)  # A as a band, A A^T's factor: on first use

    @property
    def hr_positions(self) -> np.ndarray:
        """(n_hr,) float64 position of each HR slice in LR-slice units (k / scale)."""
        return np.arange(self.n_hr) / self.scale

    @property
    def observed_hr_index(self) -> np.ndarray | None:
        """(n_lr,) HR index of each observed slice for ``decimate``; None for the other kinds."""
        if self.kind != "decimate":
            return None
        return np.arange(self.n_lr) * int(self.scale)

    def _index(self, x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self.observed_hr_index, device=x.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """A x: (..., n_hr, Y, X) -> (..., n_lr, Y, X); through the band beyond ``DENSE_ROWS`` observed slices."""
        if self.kind == "decimate":
            _check_slices(x, self.n_hr, "HR")
            return x.index_select(-3, self._index(x))
        if self.n_lr > DENSE_ROWS:
            _check_slices(x, self.n_hr, "HR")
            return _along_slices(self.band().apply, x, self.n_lr)
        return apply_along_slices(self.matrix, x)

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        """A+ y: (..., n_lr, Y, X) -> (..., n_hr, Y, X); zero-padding for ``decimate``."""
        if self.kind == "decimate":
            _check_slices(y, self.n_lr, "LR")
            out = y.new_zeros(*y.shape[:-3], self.n_hr, *y.shape[-2:])
            return out.index_copy_(-3, self._index(y), y)
        return apply_along_slices(self.pinv_matrix, y)

    def band(self) -> BandedMatrix:
        """A as a :class:`~DPNSLCore.ops.banded.BandedMatrix` (built once): products in time linear in the slices."""
        if "a" not in self._band:
            self._band["a"] = BandedMatrix.from_dense(self.matrix)
        return self._band["a"]

    def project_consistent(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The orthogonal projection of columns ``x`` (n_hr, k) onto {A x = y} (``y``: (n_lr, k)): ``x - A+ (A x -
        y)``, in x's dtype. Short stacks apply the dense A+ (BLAS); longer ones A^T (A A^T)^-1 through band
        operations (a band Cholesky solve in float64), so the cost stays linear in the slice count."""
        if self.n_lr <= DENSE_ROWS:
            return x - apply_along_slices(self.pinv_matrix, (apply_along_slices(self.matrix, x[:, :, None])
                                                             - y[:, :, None]))[:, :, 0]
        band = self.band()
        if "gram" not in self._band:
            factor, ok = band_cholesky(band.gram_bands())
            if not bool(ok.all()):
                raise ValueError("A A^T is not positive definite: the acquisition's rows are dependent")
            self._band["gram"] = factor
        residual = (band.apply(x) - y.to(x.dtype)).double()
        z = band_cholesky_solve(self._band["gram"].to(x.device), residual.T).T
        return x - band.apply_transposed(z.to(x.dtype))

    def linear(self, y: torch.Tensor) -> torch.Tensor:
        """Linear interpolation of the observed slices onto the HR grid."""
        return self.restore_observed(apply_along_slices(self.linear_matrix, y), y)

    def anchor_matrix(self, kind: str = "linear") -> np.ndarray:
        """Smooth right inverse B (A B = I) from the linear or cubic interpolator M.

        ``decimate``: B = M (A M = I exactly; kept bit-identical). ``sample``/``profile``: B = M (A M)^-1, the
        spline of M's family whose acquisition is y, so it is as smooth as M. When A M is numerically singular
        (a profile so wide that it averages out the spline's highest frequency) B = M + A+ (I - A M) instead.
        """
        if kind not in _ANCHOR_DEGREE:
            raise ValueError(f"anchor `kind` must be 'linear' or 'cubic', got {kind!r}")
        if kind not in self._anchors:
            m = interpolation_matrix(self.hr_positions, self.n_lr, _ANCHOR_DEGREE[kind])
            if self.kind != "decimate":  # for decimate A M = I exactly already; keep B bit-identical to M
                am = self.matrix @ m
                if np.linalg.cond(am) < _ANCHOR_COND_LIMIT:
                    m = np.linalg.solve(am.T, m.T).T
                else:
                    m = m + self.pinv_matrix @ (np.eye(self.n_lr) - am)
            self._anchors[kind] = m
        return self._anchors[kind]

    def anchor(self, y: torch.Tensor, kind: str = "linear") -> torch.Tensor:
        """Range anchor B y with A B = I: linear (paper) or cubic interpolation, corrected in the range of A+."""
        return self.restore_observed(self.apply_anchor(y, kind), y)

    def apply_anchor(self, y: torch.Tensor, kind: str = "linear") -> torch.Tensor:
        """``B y`` (..., n_lr, Y, X) -> (..., n_hr, Y, X), without writing the observed slices back.

        Up to ``ANCHOR_DENSE_ROWS`` observed slices B is applied as its dense matrix (:meth:`anchor_matrix`; BLAS
        is the faster there). Beyond, as its band factors: ``B = M (A M)^-1 = E (A E)^-1`` with E the banded
        B-spline evaluation matrix (M = E C^-1, C the collocation matrix), so ``B y = E z`` with ``(A E) z = y``
        solved through the band Cholesky factor of ``(A E)^T (A E)`` in float64: time linear in the slice count
        instead of n_lr * n_hr per column.
        """
        _check_slices(y, self.n_lr, "LR")
        factors = self._anchor_bands(kind) if self.n_lr > ANCHOR_DENSE_ROWS else None
        if factors is None:
            return apply_along_slices(self.anchor_matrix(kind), y)
        evaluation, system, factor = factors

        def solve(columns: torch.Tensor) -> torch.Tensor:
            rhs = system.apply_transposed(columns.double())  # (A E)^T y
            z = band_cholesky_solve(factor.to(columns.device), rhs.T).T
            return evaluation.apply(z.to(columns.dtype))

        return _along_slices(solve, y, self.n_hr)

    def _anchor_bands(self, kind: str) -> tuple[BandedMatrix, BandedMatrix, torch.Tensor] | None:
        """(E, A E, the Cholesky factor of (A E)^T (A E)) for :meth:`apply_anchor`, built once; None when A E is
        ill-conditioned (a profile too wide for the spline), where the dense anchor's fallback applies."""
        key = ("anchor", kind)
        if key not in self._band:
            if kind not in _ANCHOR_DEGREE:
                raise ValueError(f"anchor `kind` must be 'linear' or 'cubic', got {kind!r}")
            e = bspline_evaluation_matrix(self.hr_positions, self.n_lr, _ANCHOR_DEGREE[kind])
            ae = self.matrix @ e
            if np.linalg.cond(ae) >= _ANCHOR_COND_LIMIT:
                self._band[key] = None
            else:
                system = BandedMatrix.from_dense(ae)
                factor, ok = band_cholesky(BandedMatrix.from_dense(ae.T).gram_bands())  # (A E)^T (A E)
                self._band[key] = (BandedMatrix.from_dense(e), system, factor) if bool(ok.all()) else None
        return self._band[key]

    def restore_observed(self, hr: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """For ``decimate``, write ``y`` into the observed HR slices of ``hr`` (in place), so they are
        bit-exact whatever the matmul backend (e.g. TF32); other kinds are returned unchanged."""
        if self.kind == "decimate":
            hr.index_copy_(-3, self._index(hr), y.to(hr.dtype))
        return hr


def _along_slices(columns_fn, x: torch.Tensor, n_out: int) -> torch.Tensor:
    """Apply ``columns_fn`` ((n_in, k) -> (n_out, k)) along axis -3 of ``x`` (..., n_in, Y, X)."""
    *lead, n, h, w = x.shape
    flat = x.reshape(-1, n, h * w).transpose(0, 1).reshape(n, -1)  # (n_in, batch * h * w)
    out = columns_fn(flat)
    return out.reshape(n_out, -1, h * w).transpose(0, 1).reshape(*lead, n_out, h, w)


def _check_slices(x: torch.Tensor, expected: int, what: str) -> None:
    if x.ndim < 3 or x.shape[-3] != expected:
        raise ValueError(
            f"expected {what} tensor (..., {expected}, Y, X) with the slice axis at dim -3, got {tuple(x.shape)}"
        )


def make_degradation(
    kind: str,
    scale: float,
    n_lr: int | None = None,
    *,
    n_hr: int | None = None,
    profile: str = "box",
    thickness: float = 1.0,
) -> Degradation:
    """Build the acquisition operator for ``n_lr`` observed slices (or an HR stack of ``n_hr`` slices).

    Args:
        kind: "decimate" (integer scale), "sample" or "profile".
        scale: HR slices per LR slice spacing, > 1 (e.g. 5 turns 5 mm slices into 1 mm).
        n_lr: number of observed slices; or give ``n_hr`` (must equal ``hr_length(lr_length(n_hr))``).
        profile: "box" or "gaussian" (``profile`` kind only).
        thickness: slice thickness (box width or Gaussian FWHM) in units of the LR slice spacing.

    Raises:
        ValueError: bad kind, scale, lengths, profile or thickness, with the fix in the message.

    Example:
        >>> make_degradation("decimate", 4, n_lr=4).n_hr
        13
    """
    if kind not in KINDS:
        raise ValueError(f"`degradation` must be one of {KINDS}, got {kind!r}")
    scale = check_scale(scale, kind)
    if (n_lr is None) == (n_hr is None):
        raise ValueError("give exactly one of `n_lr` or `n_hr`")
    if n_lr is None:
        n_lr = lr_length(n_hr, scale)
        if hr_length(n_lr, scale) != n_hr:
            raise ValueError(
                f"{n_hr} HR slices do not fit scale {scale:g}: trim the stack to {hr_length(n_lr, scale)} slices"
            )
    n_hr = hr_length(n_lr, scale)
    if profile not in PROFILES:
        raise ValueError(f"`profile` must be one of {PROFILES}, got {profile!r}")
    if not (math.isfinite(thickness) and 0.0 < thickness <= 10.0):
        raise ValueError(f"`thickness` must be in (0, 10] LR spacings, got {thickness}")
    a = _forward_matrix(kind, scale, n_lr, n_hr, profile, thickness)
    a_pinv = _pseudo_inverse(a)
    lin = interpolation_matrix(np.arange(n_hr) / scale, n_lr, 1)
    return Degradation(kind, scale, n_lr, n_hr, profile, float(thickness), a, a_pinv, lin)


def measurement_consistent_projection(
    y: torch.Tensor,
    f: torch.Tensor,
    degradation: Degradation,
    *,
    anchor: str = "linear",
    projection: str = "pinv",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x = B y + (I - P A) f: keep the range of A fixed by ``y``, let ``f`` fill only the null space.

    Args:
        y: observed slices (..., n_lr, Y, X).
        f: network output on the HR grid (..., n_hr, Y, X); must be finite.
        degradation: the acquisition operator A.
        anchor: "linear" (B = consistent linear anchor, the paper), "cubic" (consistent cubic B-spline anchor) or
            "none" (B = 0; the paper's Table 7 ablation).
        projection: "pinv" (P = A+, zero-pad for decimate), "spline" (P = B, the anchor; needs an anchor other
            than "none"), "linear" (P = L), or "none" (no projection).

    Returns:
        (output, anchor, detail) with output = anchor + detail and detail = (I - P A) f. With anchor="linear"
        and projection="pinv", A(output) == y bit-exactly for ``decimate`` and to float round-off otherwise.
    """
    if anchor not in ANCHORS:
        raise ValueError(f"`anchor` must be one of {ANCHORS}, got {anchor!r}")
    if projection not in PROJECTIONS:
        raise ValueError(f"`projection` must be one of {PROJECTIONS}, got {projection!r}")
    _check_slices(y, degradation.n_lr, "LR")
    _check_slices(f, degradation.n_hr, "HR")
    if not torch.isfinite(f).all():
        raise ValueError("the network output `f` contains NaN or inf; the projection needs finite values")
    base = torch.zeros_like(f) if anchor == "none" else degradation.anchor(y, anchor)
    detail = null_space_detail(f, degradation, projection, anchor=anchor)
    return base + detail, base, detail


def null_space_detail(f: torch.Tensor, degradation: Degradation, projection: str = "pinv", *,
                      anchor: str = "cubic") -> torch.Tensor:
    """(I - P A) f: the part of ``f`` that the observed slices cannot see (``f`` itself for ``projection="none"``).

    ``anchor`` names B for ``projection="spline"`` ("linear" or "cubic"). For ``decimate`` with "pinv", "spline"
    or "linear" the detail is exactly 0 at the observed slices (written as 0, whatever the matmul round-off).
    """
    if projection not in PROJECTIONS:
        raise ValueError(f"`projection` must be one of {PROJECTIONS}, got {projection!r}")
    if projection == "none":
        return f
    if projection == "spline":
        if anchor not in _ANCHOR_DEGREE:
            raise ValueError(f"projection 'spline' projects with the anchor B, so it needs anchor 'linear' or "
                             f"'cubic', got {anchor!r}")
        detail = f - degradation.apply_anchor(degradation.forward(f), anchor)
    else:
        back = degradation.pinv if projection == "pinv" else degradation.linear
        detail = f - back(degradation.forward(f))
    if degradation.kind == "decimate":
        detail = detail.index_fill(-3, degradation._index(detail), 0.0)
    return detail


def simulate_acquisition(
    volume: np.ndarray | torch.Tensor,
    scale: float,
    *,
    degradation: str = "decimate",
    thickness: float = 1.0,
    profile: str = "box",
    slice_axis: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate a thick-slice acquisition of a thin-slice volume.

    The HR volume is trimmed at its end along ``slice_axis`` to the longest stack that fits the HR grid rule.

    Returns:
        (lr, hr): the simulated observed volume and the trimmed HR reference, float32, slice axis in place.
    """
    x = torch.as_tensor(np.asarray(volume, dtype=np.float32) if isinstance(volume, np.ndarray) else volume)
    if x.ndim != 3:
        raise ValueError(f"expected a 3-D volume, got shape {tuple(x.shape)}")
    x = x.movedim(slice_axis, 0).to(torch.float32)
    deg = make_degradation(degradation, scale, lr_length(x.shape[0], scale), profile=profile, thickness=thickness)
    hr = x[: deg.n_hr]
    lr = deg.forward(hr)
    return lr.movedim(0, slice_axis).numpy().copy(), hr.movedim(0, slice_axis).numpy().copy()
