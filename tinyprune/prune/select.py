"""From scores to masks: the k smallest (layer-wise or global), thresholds, whole neurons, N:M groups.

The rule everywhere: prune exactly ``k = round(s · n)`` of the ``n`` eligible entries, *counting those
already pruned* (they are pruned first, whatever their score), then the lowest scores. Ties at the
threshold are broken by position (flat index, in the order of the parameters): lower index pruned first,
so the result is deterministic. Finding the k-th smallest score is one ``np.partition`` (linear time,
no full sort). Derived in ``notebooks/05_pruning_criteria.ipynb`` ("layer-wise or global?") and
``notebooks/09_structured_pruning_and_speed.ipynb`` (neurons, N:M). Blocks: the scores of each
``(r, c)`` tile are pooled into one (``block_scores``), the same selection runs on the tiles, and the
kept tiles are spread back over the weights (``expand_blocks``).

>>> keep = smallest_k([np.array([0.3, 0.1, 0.2]), np.array([0.1, 0.9])], k=2)
>>> [m.tolist() for m in keep]        # the two 0.1s go; the tie is broken by position
[[True, False, True], [False, True]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tinyprune.checks import is_int


def _check_scores(score: np.ndarray, name: str = "scores") -> None:
    if np.isnan(score).any():
        raise ValueError(f"{name} contain NaN; a criterion must give a number to every entry")


def smallest_k(scores: Sequence[np.ndarray], k: int,
               alive: Sequence[np.ndarray | None] | None = None) -> list[np.ndarray]:
    """Keep-masks that prune exactly ``max(k, already pruned)`` entries of all ``scores`` together.

    ``alive[i]`` (bool, ``scores[i]``'s shape, ``None`` = all alive) marks the survivors of earlier
    pruning; the dead ones are pruned first, then the ``k - #dead`` smallest scores among the living,
    ties broken by flat position across the concatenation (the lower position is pruned first).
    The scores are gathered into one buffer (dead ones as 0 when all scores are >= 0, else left out)
    and ``partition``-ed in place, once, to find the threshold ``t``: living ``score > t`` survive, and
    so do the last of the living entries equal to ``t`` when more of them than needed fell at or below
    it. Linear time; no sort.
    Shapes: any arrays -> bool arrays of the same shapes (True = keep).
    """
    scores = [np.asarray(s) for s in scores]
    alive = [None] * len(scores) if alive is None else [None if m is None else np.asarray(m) for m in alive]
    if len(alive) != len(scores):
        raise ValueError(f"got {len(scores)} score arrays but {len(alive)} masks")
    total = int(sum(s.size for s in scores))
    if not (is_int(k) and 0 <= k <= total):
        raise ValueError(f"k must be an int in 0..{total} (the number of eligible entries), got {k!r}")
    living = [s.size if m is None else int(np.count_nonzero(m)) for s, m in zip(scores, alive)]
    dead = total - sum(living)
    if k <= dead:                                   # nothing more to prune: masks only lose Trues
        return [np.ones(s.shape, bool) if m is None else m.copy() for s, m in zip(scores, alive)]
    dtype = np.result_type(*[s.dtype for s in scores])
    masked = any(m is not None for m in alive)
    if masked and all(s.size == 0 or s.min() >= 0 for s in scores):     # (False if there is a NaN)
        # dead entries become 0, the smallest: the k-th smallest of all is t
        buffer = np.empty(total, dtype=dtype)
        position, rank = 0, k
        for score, mask in zip(scores, alive):
            target = buffer[position:position + score.size]
            if mask is None:
                target[...] = score.ravel()
            else:
                np.multiply(score.ravel(), mask.ravel(), out=target)
            position += score.size
    else:                        # only the living are gathered: the (k - dead)-th smallest of them is t
        buffer = np.empty(total - dead, dtype=dtype)
        position, rank = 0, k - dead
        for score, mask, count in zip(scores, alive, living):
            target = buffer[position:position + count]
            if mask is None:
                target[...] = score.ravel()
            else:
                np.compress(mask.ravel(), score.ravel(), out=target)
            position += count
        if np.isnan(buffer.max()):
            raise ValueError("scores contain NaN; a criterion must give a number to every entry")
    buffer.partition(rank - 1)
    threshold = buffer[rank - 1]
    keep = [score > threshold if mask is None else (score > threshold) & mask
            for score, mask in zip(scores, alive)]
    excess = (total - sum(int(np.count_nonzero(m)) for m in keep)) - k
    for score, mask, kept in zip(scores[::-1], alive[::-1], keep[::-1]):   # too many ties pruned:
        if excess <= 0:                                                    # give back the last ones
            break
        ties = np.flatnonzero((score == threshold) if mask is None else (score == threshold) & mask)
        back = ties[len(ties) - min(excess, len(ties)):]
        kept.reshape(-1)[back] = True
        excess -= len(back)
    return keep


def layerwise(scores: Sequence[np.ndarray], sparsity: float | Sequence[float],
              alive: Sequence[np.ndarray | None] | None = None) -> list[np.ndarray]:
    """Array i to sparsity ``s_i``: ``round(s_i · n_i)`` pruned in array i (``smallest_k`` on each).

    ``sparsity`` is one number for every array or one per array (a per-layer allocation).

    >>> [m.tolist() for m in layerwise([np.array([3.0, 1.0]), np.array([1.0, 2.0])], [0.5, 0.0])]
    [[True, False], [True, True]]
    """
    alive = [None] * len(scores) if alive is None else list(alive)
    sparsities = [sparsity] * len(scores) if np.ndim(sparsity) == 0 else list(sparsity)
    if len(sparsities) != len(scores):
        raise ValueError(f"got {len(scores)} score arrays but {len(sparsities)} sparsities")
    return [smallest_k([s], round(share * np.size(s)), [m])[0]
            for s, share, m in zip(scores, sparsities, alive)]


def global_(scores: Sequence[np.ndarray], sparsity: float,
            alive: Sequence[np.ndarray | None] | None = None) -> list[np.ndarray]:
    """One threshold across all arrays: ``round(s · Σ n_i)`` pruned in total, wherever the smallest are."""
    return smallest_k(scores, round(sparsity * sum(np.size(s) for s in scores)), alive)


def below_threshold(scores: np.ndarray, threshold: float, alive: np.ndarray | None = None) -> np.ndarray:
    """Keep-mask ``score >= τ`` (``|w| < τ`` is pruned when the score is ``|w|``), ANDed with ``alive``.

    >>> below_threshold(np.abs(np.array([0.05, -0.2, 0.001])), 0.01)
    array([ True,  True, False])
    """
    scores = np.asarray(scores)
    _check_scores(scores)
    keep = scores >= threshold
    return keep if alive is None else keep & alive


def std_threshold(weights: np.ndarray, quality: float, alive: np.ndarray | None = None) -> float:
    """Han et al. (2015)'s per-layer threshold ``τ = q · std(w)`` over the layer's surviving weights."""
    weights = np.asarray(weights)
    survivors = weights if alive is None else weights[alive]
    return float(quality * survivors.std()) if survivors.size else 0.0


def n_of_m(scores: np.ndarray, n: int = 2, m: int = 4, alive: np.ndarray | None = None) -> np.ndarray:
    """Keep-mask with the ``n`` highest scores of every ``m`` consecutive entries along axis 0 (the input
    dimension of ``W``, shape (d_in, d_out)): N:M semi-structured sparsity (2:4 by NVIDIA's Ampere,
    Mishra et al. 2021). Already-pruned entries count as pruned first; ties keep the lower index.
    ``d_in`` must be a multiple of ``m``. Shapes: (d_in, ...) -> bool of the same shape.

    >>> n_of_m(np.array([[1.0], [4.0], [3.0], [2.0]]), 2, 4).ravel()
    array([False,  True,  True, False])
    """
    scores = np.asarray(scores)
    _check_scores(scores)
    if not (isinstance(n, (int, np.integer)) and isinstance(m, (int, np.integer)) and 1 <= n <= m):
        raise ValueError(f"n:m needs integers 1 <= n <= m, got n={n!r}, m={m!r}")
    if scores.ndim < 1 or scores.shape[0] % m:
        raise ValueError(f"n:m needs the input dimension to be a multiple of m={m}; got shape "
                         f"{scores.shape} (exclude that layer, or choose m dividing {scores.shape[:1]})")
    ranked = scores.astype(np.float64)
    if alive is not None:
        ranked = np.where(alive, ranked, -np.inf)
    groups = ranked.reshape(scores.shape[0] // m, m, -1)
    order = np.argsort(-groups, axis=1, kind="stable")        # within a group: best first, ties by index
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(m)[None, :, None], axis=1)
    keep = (rank < n).reshape(scores.shape)
    return keep if alive is None else keep & alive


def check_block(block: object) -> tuple[int, int]:
    """``block`` as ``(rows, columns)``, two ints >= 1, or ``ValueError`` saying what is expected."""
    if block is None:
        raise ValueError("structure='blocks' needs block=(r, c), the rows and columns of a block, "
                         "e.g. block=(4, 4)")
    whole = (is_int(v) and v >= 1 for v in block) if isinstance(block, (tuple, list)) and len(block) == 2 \
        else [False]
    if not all(whole):
        raise ValueError(f"block must be two ints >= 1 (rows, columns), got {block!r}")
    return int(block[0]), int(block[1])


def _tiles(array: np.ndarray, block: tuple[int, int], fill: object) -> np.ndarray:
    """``array`` (d, h) padded with ``fill`` to whole blocks and viewed as (R, r, C, c)."""
    (r, c), (d, h) = block, array.shape
    rows, cols = -(-d // r), -(-h // c)
    padded = np.full((rows * r, cols * c), fill, dtype=array.dtype)
    padded[:d, :h] = array
    return padded.reshape(rows, r, cols, c)


def block_scores(scores: np.ndarray, block: tuple[int, int],
                 alive: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pool a weight matrix's scores into one score per ``(r, c)`` block: the root mean square
    ``sqrt(Σ_{i∈B} s_i² / |B|)``, and whether the block still has a living entry.

    The blocks tile ``W`` from its top-left corner; where ``d`` or ``h`` is not a multiple of ``r`` or ``c``,
    the last row or column of blocks is partial (an *edge block*) and ``|B|`` is its own number of entries,
    so that a small edge block competes on the same scale as a full one (the L2 norm would favour
    pruning it just for being small). With ``|w|`` as the score the block score is its weights' RMS.
    Entries already pruned count as score 0. Shapes: scores (d, h) -> ((⌈d/r⌉, ⌈h/c⌉) float64, same bool).

    >>> rms, living = block_scores(np.array([[3.0, 4.0, 1.0]]), (1, 2))   # blocks [3, 4] and [1]
    >>> rms.tolist(), living.tolist()
    ([[3.5355339059327378, 1.0]], [[True, True]])
    """
    scores = np.asarray(scores)
    _check_scores(scores)
    if scores.ndim != 2:
        raise ValueError(f"blocks tile a weight matrix (2-D); got scores of shape {scores.shape}")
    squares = scores.astype(np.float64) ** 2
    if alive is not None:
        squares = squares * alive
    sums = _tiles(squares, block, 0.0).sum(axis=(1, 3))
    counts = _tiles(np.ones(scores.shape), block, 0.0).sum(axis=(1, 3))
    living = np.ones(sums.shape, bool) if alive is None else \
        _tiles(np.asarray(alive), block, False).any(axis=(1, 3))
    return np.sqrt(sums / counts), living


def expand_blocks(keep: np.ndarray, block: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """A keep-mask over blocks spread over the weights: entry (i, j) follows block (i // r, j // c).

    Shapes: keep (⌈d/r⌉, ⌈h/c⌉) bool -> (d, h) bool.

    >>> expand_blocks(np.array([[True, False]]), (2, 2), (2, 3)).astype(int).tolist()
    [[1, 1, 0], [1, 1, 0]]
    """
    r, c = block
    return np.repeat(np.repeat(np.asarray(keep, bool), r, axis=0), c, axis=1)[:shape[0], :shape[1]]
