"""Block sparsity: block scores, exact counts of blocks, masks that tile the matrix, edge blocks."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyprune import prune as tpp
from tinyprune.core.nn import MLP
from tinyprune.prune import CRITERIA, NEEDS_DATA, select
from tinyprune.testing import mlp_sizes, seeds

blocks_ = st.tuples(st.integers(1, 4), st.integers(1, 4))


def tiles(mask, block):
    """Per block: (all pruned, any pruned), by a loop over the blocks (the slow, obvious way)."""
    r, c = block
    rows, cols = -(-mask.shape[0] // r), -(-mask.shape[1] // c)
    gone = np.zeros((rows, cols), bool)
    touched = np.zeros((rows, cols), bool)
    for i in range(rows):
        for j in range(cols):
            part = mask[i * r:(i + 1) * r, j * c:(j + 1) * c]
            gone[i, j], touched[i, j] = not part.any(), not part.all()
    return gone, touched


def test_block_scores_by_hand():
    scores = np.array([[1.0, 2.0, 3.0],
                       [4.0, 5.0, 6.0],
                       [7.0, 8.0, 9.0]])
    rms, living = select.block_scores(scores, (2, 2))
    expected = [[np.sqrt((1 + 4 + 16 + 25) / 4), np.sqrt((9 + 36) / 2)],   # an edge block of 2 entries
                [np.sqrt((49 + 64) / 2), 9.0]]                            # and a corner block of 1
    assert np.allclose(rms, expected) and living.all()
    alive = np.ones((3, 3), bool)
    alive[2, 2] = False
    alive[0:2, 0:2] = [[True, False], [False, False]]
    rms, living = select.block_scores(scores, (2, 2), alive)
    assert rms[0, 0] == pytest.approx(np.sqrt(1 / 4)) and rms[1, 1] == 0.0     # dead entries count as 0
    assert living.tolist() == [[True, True], [True, False]]


@given(mlp_sizes(max_width=9), seeds, st.floats(0, 0.95), blocks_, st.sampled_from(["global", "layer"]))
def test_blocks_count_exactly_and_tile_the_matrix(sizes, seed, sparsity, block, scope):
    model = MLP(sizes, seed=seed, dtype=np.float64)
    try:
        masks = tpp.prune(model, sparsity, "magnitude", scope, structure="blocks", block=block)
    except ValueError as error:
        assert "no weights at all" in str(error)
        return
    counts, totals = [], []
    for name, mask in masks.items():
        gone, touched = tiles(mask, block)
        assert np.array_equal(gone, touched)               # a block is all kept or all pruned
        assert np.all(dict(model.named_parameters())[name].data[~mask] == 0)
        counts.append(int(gone.sum()))
        totals.append(gone.size)
    if scope == "global":
        assert sum(counts) == round(sparsity * sum(totals))
    else:
        assert counts == [round(sparsity * t) for t in totals]


@given(mlp_sizes(max_width=9), seeds, st.floats(0, 0.45), st.floats(0, 0.95), blocks_)
def test_blocks_only_lose_entries_and_count_dead_blocks_first(sizes, seed, first, second, block):
    model = MLP(sizes, seed=seed, dtype=np.float64)
    tpp.random(model, first, scope="layer", seed=seed)
    before = {name: p.mask.copy() for name, p in model.named_parameters() if p.mask is not None}
    try:
        tpp.prune(model, second, structure="blocks", block=block, scope="layer")
    except ValueError:
        return
    for name, mask in before.items():
        now = dict(model.named_parameters())[name].mask
        assert not np.any(now & ~mask)
        dead_before = int(tiles(mask, block)[0].sum())
        gone, _ = tiles(now, block)
        assert int(gone.sum()) == max(dead_before, round(second * gone.size))


def test_global_blocks_remove_the_lowest_rms_blocks():
    model = MLP([4, 4, 2], seed=0)
    model.layers[0].W.data[...] = [[1, 1, 9, 9], [1, 1, 9, 9], [5, 5, 2, 2], [5, 5, 2, 2]]
    model.layers[1].W.data[...] = [[3, 3], [3, 3], [0.5, 0.5], [0.5, 0.5]]
    tpp.blocks(model, 0.5, block=(2, 2))                   # 6 blocks: RMS 1, 9, 5, 2 | 3, 0.5
    assert model.layers[0].W.mask[::2, ::2].tolist() == [[False, True], [True, False]]
    assert model.layers[1].W.mask[::2, 0].tolist() == [True, False]


@pytest.mark.parametrize("criterion", tuple(CRITERIA))
def test_any_weight_criterion_gives_block_scores(criterion):
    if criterion == "obs":
        pytest.skip("OBS selects single weights (refused with blocks: tests/test_prune_obs.py)")
    model = MLP([8, 6, 3], seed=0)
    g = np.random.default_rng(0)
    data = (g.normal(size=(20, 8)), g.integers(0, 3, 20)) if criterion in NEEDS_DATA else None
    masks = tpp.prune(model, 0.5, criterion, "layer", structure="blocks", block=(2, 3), data=data)
    assert [int(tiles(m, (2, 3))[0].sum()) for m in masks.values()] == [4, 2]   # of 8 and of 3 blocks


def test_block_arguments_are_checked():
    model = MLP([4, 3, 2], seed=0)
    with pytest.raises(ValueError, match=r"needs block=\(r, c\)"):
        tpp.prune(model, 0.5, structure="blocks")
    for bad in ((0, 2), (2,), (2.0, 2), "4x4", (True, 2)):
        with pytest.raises(ValueError, match="two ints >= 1"):
            tpp.prune(model, 0.5, structure="blocks", block=bad)
    with pytest.raises(ValueError, match="unknown option"):
        tpp.prune(model, 0.5, structure="blocks", block=(2, 2), prune_biases=True)
    assert all(p.mask is None for p in model.parameters())
