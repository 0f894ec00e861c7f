"""Keep an output inside the physical intensity range while every acquired slice stays consistent (A x = y).

Both sets are convex: the consistent volumes {x : A x = y} and the box [low, high]. For ``decimate`` they act on
different voxels (A only reads the acquired slices, which lie inside the box), so clipping the synthesised slices
is the exact Euclidean projection onto their intersection and keeps A x = y bit for bit. For ``sample`` and
``profile`` each column that leaves the box gets the exact projection onto the intersection, the closest consistent
column inside the box (a semismooth Newton method on the dual, one unknown per observed slice, every cost linear in
the slice count: :func:`closest_in_box`). Alternating projections (POCS: clip, then back onto A x = y) came first
once, as the cheaper step, but they stall: on a real 512 x 512 x 300 chest CT at x4 91 % of the offending columns
were still outside after 30 rounds, and the rounds were half of the step's time (21 s of one 200 x 200 tile, 3.7 s
with the exact projection alone); a bright thick slice beside air left 1,950 of the quick start's voxels below
-1030 HU after 300 rounds. Only a column with no consistent point in the box at all (a saturated 3071 HU slice next
to an air slice whose overlapping voxels must be -1024) gets alternating projections, which bring it as close as
they can. Every column ends on the consistent set; the report says how many voxels are still outside and by how
much.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .banded import BandedMatrix, band_cholesky, band_cholesky_solve
from .operators import Degradation

CT_FLOOR_HU = -1024.0  # air; nothing in a CT is darker
CT_CEILING_HU = 3071.0  # the top of the CT intensity window (DESIGN.md section 5)
COLUMN_CHUNK = 2048  # columns solved together by the exact projection (its cost and memory are linear in them)
SLAB = 64  # HR slices per slab when measuring how far columns leave the box (bounds the step's temporaries)
STALL_STEPS = 8  # Newton steps without halving its residual after which the exact projection gives up a column
HIGH_MARGIN = 0.10  # CT: above the input's maximum, as a share of its range (thin slices are sharper)
IMPLAUSIBLE_SHARE = 0.01  # more columns than this impossible beyond the margin: the profile is doubted
IMPLAUSIBLE_MARGIN = 0.01  # of the box's width (45 HU for CT): below it, noise in the observed slices can explain it


@dataclass(frozen=True)
class IntensityBounds:
    """The box [low, high] an output is kept in (either end may be infinite), and the rule that set it (in words).

    ``span`` is the intensity range the projections' tolerances are relative to (the input's range for a default
    box; ``high - low`` when None and both ends are finite).
    """

    low: float
    high: float
    rule: str
    span: float | None = None

    @property
    def width(self) -> float:
        """The range the tolerances are a share of: ``span``, else ``high - low`` (1 when neither is finite)."""
        if self.span is not None and self.span > 0:
            return float(self.span)
        width = self.high - self.low
        return float(width) if np.isfinite(width) and width > 0 else 1.0

    @classmethod
    def for_input(cls, array: np.ndarray | torch.Tensor, modality: str, floor: float | None = None,
                  ceiling: float | None = None) -> IntensityBounds | None:
        """The default box of an observed volume, or None when the modality has no physical range to keep.

        - CT: [-1024 HU, max(3071 HU, input max + 10 % of its range)] (never narrower than the input's range):
          nothing is darker than air, and a CT stored in 12 bits saturates at 3071 HU.
        - MR (magnitude images, no negative value): [0, inf). Nothing bounds an MR from above: a thin bright
          structure (an enhancing vessel) that a thick slice averages with darker neighbours is brighter than any
          thick value (a ceiling at input max + 50 % cut such truths away and lost up to 2.5 dB on a post-contrast
          T1 at x3), and x >= 0 with A x = y already bounds every voxel by its slices' values over their weights.
        - MR with negative values (z-scored, phase): None, no box at all (a floor at the input's minimum cut the
          thin minima, darker than any thick average).

        ``floor`` / ``ceiling``: -1024 / 3071 HU in the input's units (for input that is already normalised).

        Raises:
            ValueError: unknown modality.
        """
        if modality not in ("ct", "mr"):
            raise ValueError(f"`modality` must be 'ct' or 'mr', got {modality!r}")
        values = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
        lo_in, hi_in = float(values.min()), float(values.max())
        span = hi_in - lo_in
        if modality == "mr":
            if lo_in < 0:
                return None
            return cls(0.0, math.inf, "MR: not negative", span)
        floor = CT_FLOOR_HU if floor is None else float(floor)
        low = min(lo_in, floor)
        high = max(hi_in + HIGH_MARGIN * span, CT_CEILING_HU if ceiling is None else float(ceiling))
        return cls(low, high, "CT: from air (-1024 HU) to max(3071 HU, input max + 10 % of its range)")

    def within_type(self, dtype: np.dtype) -> IntensityBounds:
        """This box narrowed to what the integer output type ``dtype`` can hold (itself for a float type or a box
        already inside): the cast would otherwise clip those voxels after the projection and break A x = y.

        Raises:
            ValueError: the box and the type's range do not overlap.
        """
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.integer):
            return self
        info = np.iinfo(dtype)
        low, high = max(self.low, float(info.min)), min(self.high, float(info.max))
        if (low, high) == (self.low, self.high):
            return self
        if not low < high:
            raise ValueError(f"the output type {dtype} [{info.min}, {info.max}] and the intensity range "
                             f"[{self.low:g}, {self.high:g}] do not overlap")
        return IntensityBounds(low, high, f"{self.rule}; within {dtype}'s range [{info.min}, {info.max}]", self.span)


@dataclass(frozen=True)
class BoundsReport:
    """What keeping the box did: voxels clipped, voxels still outside (and the worst distance), iterations."""

    total: int = 0
    clipped: int = 0
    outside: int = 0
    worst: float = 0.0
    iterations: int = 0  # alternating projections (the most any column took)
    newton: int = 0  # Newton steps of the exact projection (the most any column took)
    fallback: int = 0  # columns with no consistent volume in the box
    columns: int = 0  # columns examined
    impossible: int = 0  # columns left outside the box by more than IMPLAUSIBLE_MARGIN of its width
    near: int = 0  # voxels outside by no more than the projections' stopping tolerance (``tolerance``)
    tolerance: float = 0.0

    def merge(self, other: BoundsReport) -> BoundsReport:
        return BoundsReport(self.total + other.total, self.clipped + other.clipped, self.outside + other.outside,
                            max(self.worst, other.worst), max(self.iterations, other.iterations),
                            max(self.newton, other.newton), self.fallback + other.fallback,
                            self.columns + other.columns, self.impossible + other.impossible,
                            self.near + other.near, max(self.tolerance, other.tolerance))

    @property
    def implausible(self) -> bool:
        """More than ``IMPLAUSIBLE_SHARE`` of the columns are outside the range by more than ``IMPLAUSIBLE_MARGIN``
        of its width after the projections: no physical volume gives these observed slices under
        the assumed acquisition (beyond what noise explains), so the assumed profile is too wide or the wrong shape
        for this scan (measured: a Gaussian profile on the real 5 mm chest CT ``ct_lung1_5mm``, see the README)."""
        return self.impossible > IMPLAUSIBLE_SHARE * max(self.columns, 1)

    def text(self, bounds: IntensityBounds) -> str:
        share = 100.0 * self.clipped / max(self.total, 1)
        line = f"output kept in [{bounds.low:g}, {bounds.high:g}] ({bounds.rule}): {share:.2f} % of the voxels moved"
        if self.newton:
            line += f", the exact projection ({self.newton} Newton step(s))"
        if self.fallback:
            line += (f"; {self.fallback} column(s) without consistent values in the range found "
                     f"({self.impossible} by more than {100 * IMPLAUSIBLE_MARGIN:g} % of it)")
            if self.iterations:
                line += f", brought closer by {self.iterations} alternating projection(s)"
        if self.implausible:
            line += (f"; that is {100.0 * self.impossible / self.columns:.1f} % of the columns: no volume inside the "
                     "range gives these observed slices under this slice profile, which is probably too wide or the "
                     "wrong shape for this scan; try a box profile or a smaller thickness")
        if self.outside:
            line += (f"; {100.0 * self.outside / max(self.total, 1):.2f} % still outside, by at most "
                     f"{self.worst:.3g}, to keep A x = y")
        if self.near:
            rounds = "; an integer output rounds them onto the range" if self.tolerance < 0.5 else ""
            line += (f"; {100.0 * self.near / max(self.total, 1):.2f} % outside by less than {self.tolerance:.2g} (the "
                     f"projections' stopping tolerance{rounds})")
        return line


def closest_in_box(x0: torch.Tensor, y: torch.Tensor, matrix: BandedMatrix | torch.Tensor, low: float, high: float,
                   *, steps: int = 30, tolerance: float = 1e-9) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The closest point to each column of ``x0`` with ``A x = y`` and ``low <= x <= high``.

    The projection's dual has one unknown per observed slice: ``x(lam) = clip(x0 + A^T lam, low, high)`` and
    ``A x(lam) = y`` is piecewise linear in ``lam``. Newton steps with the generalised Jacobian ``A D A^T`` (D: the
    unclipped voxels), backtracked on the concave dual objective, reach its exact solution in a few steps
    (finitely many pieces). ``A D A^T`` is a band matrix (rows of A overlap only their neighbours), factorised
    by a batched band Cholesky (:mod:`.banded`): each step costs time linear in the slice count and calls no
    LAPACK routine (a dense batched solve was cubic in it, and on a 150-slice crop met degenerate pivots).

    Args:
        x0: (k, n_hr) columns, float64; y: (k, n_lr) their observed values; matrix: A, (n_lr, n_hr), as a
            :class:`BandedMatrix` or dense.
        steps: most Newton steps; tolerance: largest |A x - y| accepted as solved, in the units of y.

    Returns:
        (x, solved, steps taken): x (k, n_hr) inside the box (exactly: it is a clip) and consistent to
        ``tolerance`` where ``solved``; the columns not solved have no consistent point in the box, or need more
        steps, and are left to the caller. A column whose residual has not halved in ``STALL_STEPS`` steps is given
        up from step ``2 * STALL_STEPS`` on: a column with no consistent point in the box never converges, and on
        the real chest CT under a Gaussian profile (a quarter of its columns impossible) running them all to
        ``steps`` tripled the time; box profiles end on the very same output (measured on three real thick CTs).
    """
    band = matrix if isinstance(matrix, BandedMatrix) else BandedMatrix.from_dense(matrix.cpu().numpy())
    k, m = y.shape
    # slices along dim 0, one column per observed column (n, k): the band products gather and scatter whole rows
    base_all, obs_all = x0.T.contiguous(), y.T.contiguous()
    lam = base_all.new_zeros(m, k)
    x = base_all.clamp(low, high)
    residual = band.apply(x) - obs_all
    objective = 0.5 * (x - base_all).square().sum(0)  # the dual objective at lam = 0
    del x
    taken = 0
    searching = torch.ones(k, dtype=torch.bool, device=x0.device)  # not given up on (see STALL_STEPS)
    history = [residual.abs().amax(0)]
    for step_index in range(steps):
        todo = torch.nonzero(searching & (history[-1] > tolerance)).squeeze(1)
        if todo.numel() == 0:
            break
        taken += 1
        whole = todo.numel() == k  # every column: views instead of gathers

        def pick(t: torch.Tensor, columns: torch.Tensor = todo, every: bool = whole) -> torch.Tensor:
            return t if every else t[:, columns]

        base, obs, lam_t, f = pick(base_all), pick(obs_all), pick(lam), pick(residual)
        shifted = base + band.apply_transposed(lam_t)
        free = ((shifted > low) & (shifted < high)).to(x0.dtype)
        jac = band.gram_bands(free.T)  # A D A^T, (k, bands, m)
        jac[:, 0] += (1e-12 * jac[:, 0].amax(1).clamp(min=1.0))[:, None]
        factor, ok = band_cholesky(jac)
        delta = -band_cholesky_solve(factor, f.T).T  # (m, k)
        delta[:, ~ok] = 0.0  # not factorable (not finite): no step, the column stalls and is given up
        slope = -(f * delta).sum(0)  # the dual's gradient is -(A x - y): ascent when > 0
        old_obj = objective[todo]
        t = torch.ones(len(todo), dtype=x0.dtype, device=x0.device)
        new_lam, new_res, new_obj = lam_t.clone(), f.clone(), old_obj.clone()
        pending = torch.nonzero(ok).squeeze(1)  # columns whose step is not accepted yet
        for trial in range(40):  # backtracking, per column: halve its step until the dual rises enough
            if pending.numel() == 0:
                break
            if trial == 0 and pending.numel() == len(todo):  # the full step of every column: no gathers
                cand, b_p, o_p = lam_t + delta, base, obs
                x = (shifted + band.apply_transposed(delta)).clamp(low, high)
            else:
                cand = lam_t[:, pending] + t[pending] * delta[:, pending]
                b_p, o_p = base[:, pending], obs[:, pending]
                x = (b_p + band.apply_transposed(cand)).clamp(low, high)
            res = band.apply(x) - o_p
            cand_obj = 0.5 * (x - b_p).square().sum(0) - (cand * res).sum(0)
            before = old_obj[pending]
            accept = cand_obj >= before + 1e-4 * t[pending] * slope[pending] - 1e-13 * before.abs()
            accept &= torch.isfinite(cand_obj)
            took = pending[accept]
            new_lam[:, took], new_res[:, took], new_obj[took] = cand[:, accept], res[:, accept], cand_obj[accept]
            pending = pending[~accept]
            t[pending] = 0.5 * t[pending]
        if whole:
            lam, residual, objective = new_lam, new_res, new_obj
        else:
            lam[:, todo], residual[:, todo], objective[todo] = new_lam, new_res, new_obj
        history.append(residual.abs().amax(0))
        if step_index + 1 >= 2 * STALL_STEPS:  # a column whose residual has not halved in STALL_STEPS steps has
            searching &= history[-1] <= 0.5 * history[-1 - STALL_STEPS]  # no consistent point in the box (or
            # is too slow to find it): the caller's fallback takes it, as one that ran out of steps
    x = (base_all + band.apply_transposed(lam)).clamp(low, high)
    return x.T, history[-1] <= tolerance, taken


def keep_in_bounds(x: torch.Tensor, y: torch.Tensor, degradation: Degradation, bounds: IntensityBounds, *,
                   iterations: int = 300) -> tuple[torch.Tensor, BoundsReport]:
    """Project ``x`` towards the box while A x = y stays true; returns (x, report).

    Args:
        x: consistent estimate (A x = y), (n_hr, Y, X); modified in place and returned.
        y: observed slices (n_lr, Y, X), inside the box.
        iterations: most alternating projections for a column of ``sample``/``profile`` that has no consistent
            point in the box (each stops once inside, to 1e-4 of the box's width); every other column that leaves
            the box gets the exact projection (:func:`closest_in_box`).
    """
    low, high, tolerance = bounds.low, bounds.high, 1e-4 * bounds.width
    distance, clipped, _, _ = _outside(x, low, high, tolerance)
    columns = x[0].numel()
    if clipped == 0:
        return x, BoundsReport(x.numel(), columns=columns)
    if degradation.kind == "decimate":  # exact: the acquired slices are y, inside the box, so clipping keeps them
        x.clamp_(low, high)
        return x, BoundsReport(x.numel(), clipped, columns=columns)
    # only the columns that leave the box, each on its own (its result never depends on which other columns share
    # its tile): the exact projection, and alternating projections where it finds no consistent point in the box
    if x.ndim != 3:
        raise ValueError(f"`x` must be one column block (n_hr, Y, X), got shape {tuple(x.shape)}")
    flat, y_flat = x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
    leaving = torch.nonzero(distance.reshape(-1) > 0).squeeze(1)
    band = degradation.band()
    steps, unsolved = 0, []
    for chunk in torch.split(leaving, COLUMN_CHUNK):
        start = flat[:, chunk].T.to(torch.float64)
        obs = y_flat[:, chunk].T.to(torch.float64)
        closest, solved, taken = closest_in_box(start, obs, band, low, high, tolerance=1e-9 * bounds.width)
        closest = degradation.project_consistent(closest.T, obs.T)  # onto A x = y to round-off, (n_hr, k)
        flat[:, chunk[solved]] = closest[:, solved].to(x.dtype)
        unsolved.append(chunk[~solved])
        steps = max(steps, taken)
    rest = torch.cat(unsolved)
    fallback = int(rest.numel())
    _, rounds = _alternate(flat, y_flat, rest, degradation, low, high, tolerance, iterations)
    x = flat.reshape(x.shape)
    distance, _, still, near = _outside(x, low, high, tolerance)
    impossible = int((distance > IMPLAUSIBLE_MARGIN * bounds.width).sum())
    return x, BoundsReport(x.numel(), clipped, still, float(distance.max()), rounds, steps, fallback, columns,
                           impossible, near, tolerance)


def _outside(x: torch.Tensor, low: float, high: float, tolerance: float) -> tuple[torch.Tensor, int, int, int]:
    """How ``x`` (n_hr, Y, X) lies outside [low, high], slab by slab (no whole-column temporaries at the step's memory
    peak): (the farthest each column leaves it, (Y, X), 0 inside; the voxels outside; :func:`count_outside`)."""
    column = x.new_zeros(x.shape[1:])
    outside = still = near = 0
    for slab in x.split(SLAB):
        distance = torch.maximum(low - slab, slab - high).clamp_(min=0)
        torch.maximum(column, distance.amax(dim=0), out=column)
        outside += int((distance > 0).sum())
        counts = count_outside(distance, tolerance)
        still, near = still + counts[0], near + counts[1]
    return column, outside, still, near


def count_outside(distance: torch.Tensor, tolerance: float) -> tuple[int, int]:
    """(voxels still outside the box by more than ``tolerance``, voxels outside by less) from their distances to
    it; distances within 1 % of the tolerance are the round-off of the last step onto A x = y and not counted."""
    still = int((distance > tolerance).sum())
    return still, int((distance > 0.01 * tolerance).sum()) - still


def _alternate(flat: torch.Tensor, y_flat: torch.Tensor, columns: torch.Tensor, degradation: Degradation,
               low: float, high: float, tolerance: float, rounds: int) -> tuple[torch.Tensor, int]:
    """Alternating projections (box, then back onto A x = y) on ``columns`` of ``flat`` (in place), each column
    stopping once inside to ``tolerance`` (checked every 10 rounds); returns (the columns still outside, rounds)."""
    active, done, check = columns, 0, 10
    while active.numel() and done < rounds:
        sub, y_sub = flat[:, active], y_flat[:, active]  # (n, k): k columns
        for _ in range(min(check, rounds - done)):
            sub.clamp_(low, high)
            sub = degradation.project_consistent(sub, y_sub)  # back onto A x = y (orthogonal)
        done += min(check, rounds - done)
        flat[:, active] = sub
        away = torch.maximum(low - sub, sub - high).amax(dim=0)
        active = active[away > tolerance]
    return active, done
