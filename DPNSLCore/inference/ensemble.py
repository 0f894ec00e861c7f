"""In-plane self-ensemble: average the network's estimate over flips and transposes of the slices (opt-in).

The acquisition acts along the slice axis only, so flipping or transposing every slice in-plane maps an input to
another valid input of the same acquisition, and the exact answer to the flipped one is the flipped answer. The
network is only approximately equivariant; averaging its estimate ``f`` over N of the 8 in-plane symmetries of the
square (identity, flips, transposes; the "geometric self-ensemble" of EDSR) removes part of its orientation-
dependent error. The average is taken on ``f``, before the model's anchor and projection, so the output is still
``B y + (I - P A) f̄`` and A x = y holds exactly, as for one pass; the cost is N network passes per window.

Measured (README, "Self-ensemble"): a small gain at x4 on leave-out volumes for N times the network time; off by
default (``ensemble=1``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["ENSEMBLE_SIZES", "check_ensemble", "ensemble_average"]

#: (transpose, flipped dims) of the in-plane symmetries, in the order they are added: N = 2 adds the x flip, N = 4
#: all flips, N = 8 the transposes as well. Dims -2, -1 are the in-plane (Y, X) axes of a (..., Z, Y, X) tensor.
_SYMMETRIES: tuple[tuple[bool, tuple[int, ...]], ...] = (
    (False, ()), (False, (-1,)), (False, (-2,)), (False, (-2, -1)),
    (True, ()), (True, (-1,)), (True, (-2,)), (True, (-2, -1)),
)
ENSEMBLE_SIZES = (1, 2, 4, 8)


def check_ensemble(value: object) -> int:
    """``value`` as an ensemble size (1, 2, 4 or 8).

    Raises:
        ValueError: anything else, naming the sizes allowed.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value not in ENSEMBLE_SIZES:
        raise ValueError(f"`ensemble` must be one of {ENSEMBLE_SIZES} (network passes over in-plane flips and "
                         f"transposes; 1: off), got {value!r}")
    return value


def _forward(x: torch.Tensor, transpose: bool, dims: tuple[int, ...]) -> torch.Tensor:
    x = x.transpose(-2, -1) if transpose else x
    return torch.flip(x, dims) if dims else x


def _inverse(x: torch.Tensor, transpose: bool, dims: tuple[int, ...]) -> torch.Tensor:
    x = torch.flip(x, dims) if dims else x
    return x.transpose(-2, -1) if transpose else x


def ensemble_average(fn: Callable[[torch.Tensor], tuple[torch.Tensor, ...]], y: torch.Tensor,
                     size: int) -> tuple[torch.Tensor, ...]:
    """The mean over the first ``size`` in-plane symmetries g of g⁻¹ fn(g y), for each tensor ``fn`` returns.

    ``fn`` maps a (..., Z, Y, X) tensor to tensors whose last two dims are that input's (Y, X) (any leading dims,
    any Z), or None (a part not asked for: None in the result too); ``size`` 1 is ``fn(y)`` itself. The sum is kept
    in float32 and divided once.
    """
    check_ensemble(size)
    if size == 1:
        return fn(y)
    total: list[torch.Tensor | None] | None = None
    for transpose, dims in _SYMMETRIES[:size]:
        outs = [None if o is None else _inverse(o, transpose, dims).float() for o in fn(_forward(y, transpose, dims))]
        # the first pass is copied: the sums are made in place and must never write into what fn returned
        total = [None if o is None else o.clone() for o in outs] if total is None \
            else [None if t is None else t.add_(o) for t, o in zip(total, outs, strict=True)]
    return tuple(None if t is None else t.div_(size) for t in total)
