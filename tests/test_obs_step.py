"""OBS is a loop of one step, ``prune.obs.obs_prune_one``: the loop gives what it gave before the step was
a function, and ``exercises.use`` runs the student's step in it (the reference solution bit for bit, a
slip visibly)."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyprune import prune as tpp
from tinyprune.core.nn import MLP
from tinyprune.exercises import solutions
from tinyprune.exercises.hooks import use
from tinyprune.exercises.slips import SLIPS
from tinyprune.prune import obs
from tinyprune.testing import seeds

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "tests" / "data" / "obs_reference_steps.npz"


def _recorder():
    """``data_scripts/record_obs_reference_steps.py``: the cases' model builder and the run it recorded."""
    spec = importlib.util.spec_from_file_location("record_obs_reference_steps",
                                                  ROOT / "data_scripts" / "record_obs_reference_steps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _recorded_cases() -> dict[str, dict[str, np.ndarray]]:
    cases: dict[str, dict[str, np.ndarray]] = {}
    with np.load(RECORDED) as stored:
        for key in stored.files:
            case, name = key.split("/", 1)
            cases.setdefault(case, {})[name] = stored[key]
    return cases


def test_obs_reference_gives_what_it_recorded_before_its_loop_became_steps() -> None:
    """80 hypothesis-drawn layers (weights on a grid, so costs tie; prior masks; blocks of 1, 2 and 1/8)."""
    recorder, cases = _recorder(), _recorded_cases()
    assert len(cases) == 80
    for label, case in cases.items():
        for key, value in recorder.run(case).items():
            assert np.array_equal(value, case[key]), (label, key)


def test_a_changed_step_is_noticed_by_the_recording(monkeypatch) -> None:
    """The comparison can fail: with one division per entry of H⁻¹'s update, some case differs."""
    def divides(w, H_inv, prunable):
        diagonal = np.diag(H_inv)
        q = int(np.argmin(np.where(prunable, w**2 / diagonal, np.inf)))
        column, keep = H_inv[:, q], np.arange(w.size) != q
        new_H_inv = H_inv - np.outer(column, column / column[q])
        return (w - w[q] / column[q] * column)[keep], new_H_inv[np.ix_(keep, keep)], q

    monkeypatch.setattr(obs, "obs_prune_one", divides)
    recorder = _recorder()
    assert any(not np.array_equal(value, case[key]) for case in _recorded_cases().values()
               for key, value in recorder.run(case).items())


@st.composite
def _unit(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = draw(st.integers(3, 9))      # the block's solve has p - 1 >= 2 right-hand sides (see obs_prune_one)
    generator = np.random.default_rng(draw(seeds))
    B = generator.normal(size=(p + 2, p))
    w = draw(hnp.arrays(np.float64, (p,), elements=st.integers(-6, 6).map(lambda k: k / 3)))
    prunable = np.arange(p) < p - 1
    return w, np.linalg.inv(B.T @ B / (p + 2) + 0.05 * np.eye(p)), prunable


@given(_unit())
def test_one_step_is_a_block_of_one_bit_for_bit_and_leaves_the_inverse_of_the_rest(case) -> None:
    w, H_inv, prunable = case
    costs = np.where(prunable, w**2 / np.diag(H_inv), np.inf)
    # a tie has one cheapest for the step (the first) and any of them for argpartition's block of one;
    # the library never runs a block of one, so the claim is for a single cheapest weight
    assume(np.count_nonzero(costs == costs.min()) == 1)
    new_w, new_H_inv, q = obs.obs_prune_one(w, H_inv, prunable)
    block_w, block_H_inv, rest = obs._obs_prune_block(w, H_inv, prunable, 1)
    assert np.array_equal(new_w, block_w) and np.array_equal(new_H_inv, block_H_inv)
    assert np.array_equal(rest, np.delete(np.arange(w.size), q)) and prunable[q]
    assert q == int(np.argmin(costs))                                  # the first of the cheapest
    H = np.linalg.inv(H_inv)
    assert np.allclose(new_H_inv, np.linalg.inv(H[np.ix_(rest, rest)]), rtol=1e-8, atol=1e-10)
    assert np.array_equal(solutions.obs_prune_one(w, H_inv, prunable)[0], new_w)


def _state(model: MLP) -> list[np.ndarray]:
    return [p.data.copy() for p in model.parameters()] + [layer.W.mask.copy() for layer in model.layers]


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b))


MODEL = MLP([12, 8, 6, 4], seed=3, dtype=np.float64)
X = np.random.default_rng(0).normal(size=(60, 12))


@pytest.mark.parametrize("block_size", [1, None])
def test_use_runs_obs_reference_on_the_students_step(block_size) -> None:
    ours = copy.deepcopy(MODEL)
    obs.obs_reference(ours, X, 0.75, block_size=block_size)
    removed = sum(int((~layer.W.mask).sum()) for layer in ours.layers)
    theirs = copy.deepcopy(MODEL)
    with use({"obs_prune_one": solutions.obs_prune_one}) as usage:
        obs.obs_reference(theirs, X, 0.75, block_size=block_size)
    # widths 12, 8, 6 keep fewer than 16 candidates: even 1/8-blocks are single steps, one per weight
    assert usage.student["obs_prune_one"] == removed == 8 * 9 + 6 * 6 + 4 * 4 and not usage.library
    assert _same(_state(theirs), _state(ours))
    assert obs.obs_prune_one.__module__ == "tinyprune.prune.obs"       # put back on exit
    for _, slip in SLIPS["obs_prune_one"][:3]:                        # δw, the choice, H⁻¹'s update
        wrong = copy.deepcopy(MODEL)
        with use({"obs_prune_one": slip}):
            obs.obs_reference(wrong, X, 0.75, block_size=block_size)
        assert not _same(_state(wrong), _state(ours)), slip.__name__


def test_use_leaves_blocks_of_several_weights_to_the_library_and_counts_them() -> None:
    model, data = MLP([40, 6, 3], seed=1, dtype=np.float64), np.random.default_rng(2).normal(size=(80, 40))
    ours, theirs = copy.deepcopy(model), copy.deepcopy(model)
    obs.obs_reference(ours, data, 0.5)
    with use({"obs_prune_one": solutions.obs_prune_one}) as usage:
        obs.obs_reference(theirs, data, 0.5)
    # layer 0, 6 units: 20 of 40 inputs in blocks of 40 // 8 = 5, then 4, 3, 3, 3 and the last 2 (the
    # library's); layer 1, 3 units: 3 of 6, one at a time (the student's)
    assert usage.student["obs_prune_one"] == 3 * 3 and usage.library["obs_prune_one"] == 6 * 6
    assert _same(_state(theirs), _state(ours))


def test_the_verb_runs_its_per_unit_finish_on_the_students_step() -> None:
    ours, theirs = copy.deepcopy(MODEL), copy.deepcopy(MODEL)
    tpp.prune(ours, 0.5, "obs", scope="layer", data=X)
    with use({"obs_prune_one": solutions.obs_prune_one}) as usage:
        tpp.prune(theirs, 0.5, "obs", scope="layer", data=X)
    assert usage.student["obs_prune_one"] == 8 * 6 + 6 * 4 + 4 * 3 and not usage.library
    assert _same(_state(theirs), _state(ours))
    wrong = copy.deepcopy(MODEL)
    with use({"obs_prune_one": SLIPS["obs_prune_one"][0][1]}):
        tpp.prune(wrong, 0.5, "obs", scope="layer", data=X)
    assert not _same(_state(wrong), _state(ours))


def test_a_step_that_breaks_the_contract_is_refused_in_one_line() -> None:
    def removes_the_bias(w, H_inv, prunable):
        return solutions.obs_prune_one(w, H_inv, np.arange(w.size) == w.size - 1)

    with use({"obs_prune_one": removes_the_bias}), pytest.raises(ValueError, match="prunable"):
        obs.obs_reference(copy.deepcopy(MODEL), X, 0.5)


def test_of_equal_costs_the_step_removes_the_first() -> None:
    w = np.array([1 / 3, 1 / 3, 0.0, 0.0, 0.0])                 # two prunable zeros: both cost 0
    H_inv = np.linalg.inv(np.eye(5) + 0.1 * np.ones((5, 5)))
    prunable = np.array([True, True, True, True, False])
    assert obs.obs_prune_one(w, H_inv, prunable)[2] == 2
    assert solutions.obs_prune_one(w, H_inv, prunable)[2] == 2
