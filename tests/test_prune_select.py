"""Selection laws: exactly k pruned, dead first, deterministic ties, N:M groups, thresholds."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyprune.prune import select


def reference(scores, alive, k):
    """A full sort by (dead first, score, flat position): the k first are pruned."""
    flat = np.concatenate([s.ravel() for s in scores]).astype(np.float64)
    live = np.concatenate([np.ones(s.size, bool) if m is None else m.ravel() for s, m in zip(scores, alive)])
    order = np.lexsort((np.arange(flat.size), flat, live))      # last key first: dead (False) first
    pruned = np.zeros(flat.size, bool)
    pruned[order[:max(k, int((~live).sum()))]] = True
    out, start = [], 0
    for s in scores:
        out.append(~pruned[start:start + s.size].reshape(s.shape))
        start += s.size
    return out


@st.composite
def score_sets(draw, nonnegative=None):
    count = draw(st.integers(1, 3))
    shapes = [draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=6)) for _ in range(count)]
    low = 0 if (nonnegative if nonnegative is not None else draw(st.booleans())) else -3
    # small integers: many ties, so tie-breaking is exercised
    scores = [draw(hnp.arrays(np.float32, s, elements=st.integers(low, 3).map(float))) for s in shapes]
    alive = [draw(st.none() | hnp.arrays(np.bool_, s)) for s in shapes]
    total = sum(s.size for s in scores)
    k = draw(st.integers(0, total))
    return scores, alive, k


@given(score_sets())
def test_smallest_k_matches_a_full_sort(case):
    scores, alive, k = case
    keep = select.smallest_k(scores, k, alive)
    expected = reference(scores, alive, k)
    dead = sum(0 if m is None else int((~m).sum()) for m in alive)
    assert sum(int((~m).sum()) for m in keep) == max(k, dead)
    for got, want, s, m in zip(keep, expected, scores, alive):
        assert got.dtype == np.bool_ and got.shape == s.shape
        assert np.array_equal(got, want)
        if m is not None:
            assert not np.any(got & ~m)                        # masks only lose entries


@given(score_sets(nonnegative=False), st.floats(0, 0.99))
def test_layerwise_reaches_the_sparsity_in_every_array(case, sparsity):
    scores, _, _ = case
    keep = select.layerwise(scores, sparsity)
    for s, m in zip(scores, keep):
        assert int((~m).sum()) == round(sparsity * s.size)


@given(score_sets(), st.floats(0, 0.99))
def test_global_prunes_the_globally_smallest(case, sparsity):
    scores, _, _ = case
    keep = select.global_(scores, sparsity)
    kept = np.concatenate([s[m] for s, m in zip(scores, keep)])
    gone = np.concatenate([s[~m] for s, m in zip(scores, keep)])
    assert gone.size == round(sparsity * sum(s.size for s in scores))
    if kept.size and gone.size:
        assert gone.max() <= kept.min()


def test_ties_are_broken_by_position():
    keep = select.smallest_k([np.zeros(3), np.zeros(2)], 3)
    assert [m.tolist() for m in keep] == [[False, False, False], [True, True]]
    keep = select.smallest_k([np.ones(4)], 2, [np.array([True, False, True, True])])
    assert keep[0].tolist() == [False, False, True, True]


def test_smallest_k_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        select.smallest_k([np.array([1.0, np.nan])], 1)
    with pytest.raises(ValueError, match="NaN"):
        select.smallest_k([np.array([1.0, np.nan])], 1, [np.array([True, True])])
    with pytest.raises(ValueError, match="k must"):
        select.smallest_k([np.ones(3)], 4)
    with pytest.raises(ValueError, match="masks"):
        select.smallest_k([np.ones(3)], 1, [None, None])


@given(st.integers(1, 4).flatmap(lambda m: st.tuples(st.integers(1, m), st.just(m))),
       st.integers(1, 4), st.integers(1, 5), st.integers(0, 2**31 - 1), st.booleans())
def test_n_of_m_keeps_n_per_group(nm, groups, d_out, seed, with_alive):
    n, m = nm
    generator = np.random.default_rng(seed)
    scores = generator.integers(0, 4, size=(groups * m, d_out)).astype(float)
    alive = generator.random(scores.shape) < 0.7 if with_alive else None
    keep = select.n_of_m(scores, n, m, alive)
    by_group = keep.reshape(groups, m, d_out)
    ranked = np.where(alive, scores, -np.inf) if with_alive else scores
    ranked = ranked.reshape(groups, m, d_out)
    living = alive.reshape(groups, m, d_out).sum(axis=1) if with_alive else np.full((groups, d_out), m)
    assert np.array_equal(by_group.sum(axis=1), np.minimum(n, living))
    for g in range(groups):
        for c in range(d_out):
            column, kept = ranked[g, :, c], by_group[g, :, c]
            if kept.any() and (~kept).any():
                assert column[kept].min() >= column[~kept].max()
    if with_alive:
        assert not np.any(keep & ~alive)


def test_n_of_m_errors_and_ties():
    assert select.n_of_m(np.ones((4, 1)), 2, 4).ravel().tolist() == [True, True, False, False]
    with pytest.raises(ValueError, match="multiple of m"):
        select.n_of_m(np.ones((6, 2)), 2, 4)
    with pytest.raises(ValueError, match="1 <= n <= m"):
        select.n_of_m(np.ones((4, 2)), 5, 4)


def test_thresholds():
    w = np.array([0.5, -0.01, 0.02, -2.0])
    assert select.below_threshold(np.abs(w), 0.05).tolist() == [True, False, False, True]
    alive = np.array([True, True, True, False])
    assert select.below_threshold(np.abs(w), 0.0, alive).tolist() == alive.tolist()
    assert select.std_threshold(w, 2.0) == pytest.approx(2.0 * w.std())
    assert select.std_threshold(w, 1.0, alive) == pytest.approx(w[:3].std())
