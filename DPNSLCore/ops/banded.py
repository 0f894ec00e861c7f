"""Banded slice-axis matrices: apply an acquisition A, its transpose and solves with ``A D A^T`` in time linear in the
number of slices.

A row of an acquisition matrix A (a slice profile, a sampling row) touches a few neighbouring HR slices, so A is
banded; so are ``A A^T`` and ``A D A^T`` for any diagonal D (rows that do not overlap give zeros). Applying them as
dense (n_lr x n_hr) matrices costs n_lr * n_hr per column, and a dense solve n_lr ** 3: on a 600-slice series that is
what made the bounds step of :mod:`.bounds` take minutes (and reach LAPACK's batched LU with degenerate pivots). Here
A is stored row by row as (start, weights), products are gathers and scatter-adds, and the symmetric positive
definite band systems are solved by a batched band Cholesky factorisation (one Python loop over rows, vectorised
over columns; no LAPACK call), so every cost is linear in the slice count.

Example:
    >>> import numpy as np, torch
    >>> a = np.array([[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    >>> band = BandedMatrix.from_dense(a)
    >>> band.apply(torch.ones(4, 3, dtype=torch.float64))[:, 0].tolist()
    [1.0, 1.0]
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["ANCHOR_DENSE_ROWS", "DENSE_ROWS", "BandedMatrix", "band_cholesky", "band_cholesky_solve"]

#: up to this many rows a product goes through a dense BLAS matmul (faster for short stacks: n_lr * n_hr per column is
#: small then, and gathers cost more than they save); beyond it through the bands (linear in the slices)
DENSE_ROWS = 128
#: the same for the anchor B = E (A E)^-1, whose band form needs a banded solve: BLAS on the dense B stays faster up
#: to here (600 observed slices, x4, 16 k columns, one thread: dense 1.4 s, bands 2.1 s; the dense B of 1024 observed
#: slices at x4 is 33 MB)
ANCHOR_DENSE_ROWS = 1024


@dataclass(frozen=True)
class BandedMatrix:
    """An (m, n) matrix whose row i is nonzero only on columns ``start[i] .. start[i] + width - 1``.

    Attributes:
        start: (m,) first column of each row (int64; rows near the end are shifted left so that the window fits).
        weights: (m, width) float64 values of each row on its window (zeros where the row has none).
        n: number of columns.
        dense: the (m, n) float64 matrix itself, kept for short stacks (``m <= DENSE_ROWS``), else None.
    """

    start: torch.Tensor
    weights: torch.Tensor
    n: int
    dense: torch.Tensor | None = None

    @classmethod
    def from_dense(cls, matrix: np.ndarray) -> BandedMatrix:
        """The band of a dense matrix (every nonzero kept exactly; rows may not be empty)."""
        matrix = np.asarray(matrix, dtype=np.float64)
        m, n = matrix.shape
        nonzero = matrix != 0
        if not nonzero.any(axis=1).all():
            raise ValueError("every row of a banded matrix needs a nonzero entry")
        first = nonzero.argmax(axis=1)
        last = n - 1 - nonzero[:, ::-1].argmax(axis=1)
        width = int((last - first).max()) + 1
        start = np.minimum(first, n - width)
        index = start[:, None] + np.arange(width)[None, :]
        weights = np.take_along_axis(matrix, index, axis=1)
        dense = torch.from_numpy(matrix.copy()) if m <= DENSE_ROWS else None
        return cls(torch.from_numpy(start.astype(np.int64)), torch.from_numpy(weights), n, dense)

    @property
    def m(self) -> int:
        return int(self.start.shape[0])

    @property
    def width(self) -> int:
        return int(self.weights.shape[1])

    def _index(self, device: torch.device) -> torch.Tensor:
        return (self.start[:, None] + torch.arange(self.width)[None, :]).to(device)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``M @ x`` for x (n, k) -> (m, k), in x's dtype."""
        if self.dense is not None:
            return self.dense.to(device=x.device, dtype=x.dtype) @ x
        w = self.weights.to(device=x.device, dtype=x.dtype)
        start = self.start.to(x.device)
        out = x.new_zeros(self.m, x.shape[1])
        for a in range(self.width):  # one row gather per band position: no (m, width, k) intermediate
            out.addcmul_(w[:, a:a + 1], x.index_select(0, start + a))
        return out

    def apply_transposed(self, r: torch.Tensor) -> torch.Tensor:
        """``M^T @ r`` for r (m, k) -> (n, k), in r's dtype."""
        if self.dense is not None:
            return self.dense.to(device=r.device, dtype=r.dtype).T @ r
        w = self.weights.to(device=r.device, dtype=r.dtype)
        start = self.start.to(r.device)
        out = r.new_zeros(self.n, r.shape[1])
        for a in range(self.width):
            out.index_add_(0, start + a, w[:, a:a + 1] * r)
        return out

    def gram_bands(self, diagonal: torch.Tensor | None = None) -> torch.Tensor:
        """The lower bands of ``M D M^T`` for D = diag(``diagonal``): (k, p + 1, m) with ``[:, d, i]`` the entry
        (i + d, i) (zero past the end); ``diagonal`` (k, n), or None for D = I (then k = 1).

        p is the largest row offset whose supports share a column (a property of M alone, so every D gives the same
        layout); entries of rows that share no column are exact zeros. The result is a view of a (m, p + 1, k) array
        (rows first, as :func:`band_cholesky` works): pass a ``diagonal`` whose transpose is contiguous and nothing
        is transposed on the way.
        """
        device = self.weights.device if diagonal is None else diagonal.device
        dtype = torch.float64 if diagonal is None else diagonal.dtype
        w = self.weights.to(device=device, dtype=dtype)
        d = torch.ones(self.n, 1, dtype=dtype, device=device) if diagonal is None else diagonal.T
        wd = d.contiguous()[self._index(device)] * w[:, :, None]  # (m, width, k): row i's weights times D
        bands = [torch.einsum("mwk,mw->mk", wd, w)]
        for terms in self._overlaps:  # row offsets 1, 2, ..., p
            band = wd.new_zeros(self.m, wd.shape[2])
            for a, rows, other in terms:  # entry a of row i meets entry a - shift of row i + offset
                rows = rows.to(device)
                band[rows] += wd[rows, a] * other.to(device=device, dtype=dtype)[:, None]
            bands.append(band)
        return torch.stack(bands, dim=1).permute(2, 1, 0)

    @functools.cached_property
    def _overlaps(self) -> list[list[tuple[int, torch.Tensor, torch.Tensor]]]:
        """For each row offset whose rows share a column (1, 2, ... up to p, in order): the band positions a, the
        rows i and the weights of row i + offset that entry a of row i meets (computed once per matrix)."""
        overlaps = []
        for offset in range(1, self.m):
            shift = self.start[offset:] - self.start[:-offset]  # how far row i + offset's window starts after row i's
            if bool((shift >= self.width).all()):
                break
            terms, shared = [], False
            for a in range(self.width):
                b = a - shift
                ok = (b >= 0) & (b < self.width)
                if bool(ok.any()):
                    rows = torch.nonzero(ok).squeeze(1)
                    other = self.weights[rows + offset, b[rows]]
                    shared = shared or bool(((self.weights[rows, a] != 0) & (other != 0)).any())
                    terms.append((a, rows, other))
            if not shared:
                break  # rows this far apart share no HR slice (so neither do rows farther apart)
            overlaps.append(terms)
        return overlaps


def band_cholesky(bands: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cholesky factors L (L L^T = S) of symmetric positive definite band matrices, batched.

    Args:
        bands: (k, p + 1, m) lower bands of S (``[:, d, i]`` = S[i + d, i]).

    Returns:
        (factor, ok): factor (k, p + 1, m), the bands of L in the same layout (``[:, 0]`` its diagonal); ok (k,)
        False for a matrix that is not (numerically) positive definite or not finite: its factor is meaningless and
        the caller treats that system as unsolved (no exception, so one bad column does not stop the others).

    The loop over rows is Python, vectorised over the k matrices, so its cost is the number of tensor operations per
    row: each is one in-place operation on a row view taken before the loop (a tridiagonal system, p = 1, takes three
    per row). A pivot that is not positive gives a NaN root, which spreads to the rest of that matrix's factor and is
    caught by the final check.
    """
    k, width, m = bands.shape
    p = width - 1
    low = bands.permute(2, 1, 0).contiguous()  # (m, p + 1, k): each row's entries contiguous over the matrices
    if low.data_ptr() == bands.data_ptr():
        low = low.clone()  # the caller's bands were already in this layout: never modify them
    entry = [low[:, d].unbind(0) for d in range(width)]  # entry[d][i]: the view of L[i + d, i] (then S[i + d, i])
    for i in range(m):
        root = entry[0][i].sqrt_()
        reach = min(p, m - 1 - i)
        for d in range(1, reach + 1):
            entry[d][i].div_(root)  # L[i + d, i]
        for d in range(1, reach + 1):  # S[i + d + e, i + d] -= L[i + d + e, i] L[i + d, i]
            for e in range(reach - d + 1):
                entry[e][i + d].addcmul_(entry[d + e][i], entry[d][i], value=-1.0)
    ok = (torch.isfinite(low).all(dim=0).all(dim=0) & (low[:, 0] > 0).all(dim=0))  # NaN > 0 is False
    return low.permute(2, 1, 0), ok


def band_cholesky_solve(factor: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve ``L L^T z = rhs`` with the factors of :func:`band_cholesky`.

    Args:
        factor: (k, p + 1, m), or (1, p + 1, m) shared by every right-hand side.
        rhs: (k, m) one right-hand side per matrix (or per column when the factor is shared).

    Returns:
        (k, m) the solutions.
    """
    width, m = factor.shape[1], factor.shape[2]
    p = width - 1
    z = rhs.T.clone(memory_format=torch.contiguous_format)  # (m, k), a copy: rows contiguous, rhs untouched
    bands = factor.permute(2, 1, 0).contiguous()  # (m, p + 1, k or 1)
    entry = [bands[:, d].unbind(0) for d in range(width)]
    row = z.unbind(0)
    for i in range(m):  # forward: L u = rhs
        row[i].div_(entry[0][i])
        for d in range(1, min(p, m - 1 - i) + 1):
            row[i + d].addcmul_(entry[d][i], row[i], value=-1.0)
    for i in range(m - 1, -1, -1):  # backward: L^T z = u
        for d in range(1, min(p, m - 1 - i) + 1):
            row[i].addcmul_(entry[d][i], row[i + d], value=-1.0)
        row[i].div_(entry[0][i])
    return z.T
