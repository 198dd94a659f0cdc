"""Record ``obs_reference``'s output on hypothesis-generated small layers: ``obs_reference_steps.npz``.

Run once at commit 1662e9c (into ``tests/data/``), before ``obs_reference``'s loop was rewritten around
the one-step function ``prune.obs.obs_prune_one``; ``tests/test_obs_step.py`` replays every stored case
on today's code and asks for the same masks and weights, bit for bit. The inputs are stored with the
outputs, so the replay does not depend on how hypothesis or ``MLP`` draw them.

    python data_scripts/record_obs_reference_steps.py tests/data/obs_reference_steps.npz
"""

from __future__ import annotations

import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyprune.core.nn import MLP
from tinyprune.files import atomic_write
from tinyprune.prune.obs import obs_reference
from tinyprune.testing import mlp_sizes, seeds

# every weight on a grid of 0.25 in [-2, 2]: ties of w_q² / [H⁻¹]_qq (zeros above all) are common
GRID = st.integers(-8, 8).map(lambda k: k / 4)


@st.composite
def cases(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """A float64 MLP of 2-3 layers (weights on the grid, some masked), inputs X and the OBS settings."""
    sizes = draw(mlp_sizes(max_hidden=2, max_width=7))
    case: dict[str, np.ndarray] = {"sizes": np.array(sizes)}
    for index, (d, h) in enumerate(zip(sizes[:-1], sizes[1:])):
        case[f"layers.{index}.W"] = draw(hnp.arrays(np.float64, (d, h), elements=GRID))
        case[f"layers.{index}.b"] = draw(hnp.arrays(np.float64, (h,), elements=GRID))
        case[f"layers.{index}.W/mask"] = draw(hnp.arrays(bool, (d, h), elements=st.booleans()
                                                         .map(lambda keep: keep or draw(st.booleans()))))
    generator = np.random.default_rng(draw(seeds))
    case["X"] = generator.normal(size=(draw(st.integers(2, 12)), sizes[0]))
    case["sparsity"] = np.array(draw(st.sampled_from([0.25, 0.5, 0.7, 0.9, 1.0])))
    case["block_size"] = np.array(draw(st.sampled_from([0, 1, 1, 2])))         # 0 stands for None
    case["damping"] = np.array(draw(st.sampled_from([0.01, 0.1, 1.0])))
    return case


def build(case: dict[str, np.ndarray]) -> MLP:
    """The case's model: its weights, with the masked ones at exactly 0."""
    model = MLP([int(s) for s in case["sizes"]], seed=0, dtype=np.float64)
    for index, layer in enumerate(model.layers):
        mask = case[f"layers.{index}.W/mask"]
        layer.W.data[...] = case[f"layers.{index}.W"] * mask
        layer.b.data[...] = case[f"layers.{index}.b"]
        layer.W.mask = mask.copy()
    return model


def run(case: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``obs_reference`` on the case: every parameter's data and every weight mask afterwards."""
    model = build(case)
    obs_reference(model, case["X"], float(case["sparsity"]), damping=float(case["damping"]),
                  block_size=int(case["block_size"]) or None)
    out = {f"{name}/out": p.data.copy() for name, p in model.named_parameters()}
    out.update({f"layers.{i}.W/mask_out": layer.W.mask.copy() for i, layer in enumerate(model.layers)})
    return out


def main(path: str) -> None:
    recorded: list[dict[str, np.ndarray]] = []

    @settings(max_examples=80, derandomize=True, database=None, deadline=None)
    @given(cases())
    def collect(case: dict[str, np.ndarray]) -> None:
        recorded.append({**case, **run(case)})

    collect()
    arrays = {f"case{i}/{key}": value for i, case in enumerate(recorded) for key, value in case.items()}
    atomic_write(path, lambda file: np.savez_compressed(file, **arrays))
    print(f"{len(recorded)} cases written to {path}")


if __name__ == "__main__":
    main(sys.argv[1])
