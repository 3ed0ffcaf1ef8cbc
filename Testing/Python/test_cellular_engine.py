"""The cellular automaton's rules on small synthetic torch grids (no scan, no placement).

Each reference defect has a test of its fix: acceptance really slows growth by level, neighbour
choice uniform over the 26 offsets, necrosis counted as tumor, 3D (not per-slice) blur.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from TumorSynthLib.core.errors import DependencyError, InputError  # noqa: E402
from TumorSynthLib.synthesis.automaton import engine as ce  # noqa: E402
from TumorSynthLib.synthesis.automaton.grid import (  # noqa: E402
    CAGrid,
    expected_steps,
    load_calibration,
    steps_for_diameter,
    volume_preserving_mask,
)
from TumorSynthLib.synthesis.geometry.cellular import edge_weight  # noqa: E402


def _automaton(state, acceptance=1.0, seed=0, yield_at=None, vessel_yield=0):
    acc = np.full(state.shape, acceptance, np.float32)
    return ce.CellularAutomaton(state, acc, seed=seed, yield_at=yield_at, vessel_yield=vessel_yield,
                                device="cpu")


def _grown(ca, steps):
    for _ in range(steps):
        ca.grow()
    return ca.state_numpy()


def test_offset_table_is_the_26_neighbours():
    off = ce.neighbour_offsets()
    assert off.shape == (26, 3)
    assert len({tuple(o) for o in off}) == 26
    assert np.abs(off).max() == 1 and not np.any(np.all(off == 0, axis=1))


def test_neighbour_choice_is_uniform_over_26():
    """Isolated invaders (population 5, 3 cells apart) each raise exactly one neighbour from
    0 to 1 in one step; the offsets they chose must be uniform (chi-square)."""
    from scipy.stats import chisquare

    n = 66
    state = np.zeros((n, n, n), np.int8)
    centres = np.stack(np.meshgrid(*[np.arange(1, n - 1, 3)] * 3, indexing="ij"), -1).reshape(-1, 3)
    state[tuple(centres.T)] = ce.INVADE_FROM
    after = _grown(_automaton(state), 1)
    assert np.all(after[tuple(centres.T)] == ce.INVADE_FROM + 1)
    hits = np.argwhere(after == 1)
    assert len(hits) == len(centres)          # acceptance 1: every invader invaded once
    offsets = hits - (np.rint((hits - 1) / 3.0) * 3 + 1).astype(int)
    index = {tuple(o): i for i, o in enumerate(ce.neighbour_offsets())}
    counts = np.bincount([index[tuple(o)] for o in offsets], minlength=26)
    assert counts.min() > 0
    assert chisquare(counts).pvalue > 0.001


def test_acceptance_levels_really_change_growth_speed():
    """Level 3 tissue (acceptance 0.1) grows clearly slower than level 1 (the reference
    truncates the probabilities so that every level always accepts)."""
    d1 = ce.grow_cells((49, 49, 49), ce.ACCEPTANCE[0], 80, seed=3, device="cpu")[-1]
    d2 = ce.grow_cells((49, 49, 49), ce.ACCEPTANCE[1], 80, seed=3, device="cpu")[-1]
    d3 = ce.grow_cells((49, 49, 49), ce.ACCEPTANCE[2], 80, seed=3, device="cpu")[-1]
    assert d1 > 1.4 * d2 > 1.4 * 1.2 * d3
    assert d3 < 0.5 * d1


def test_calibration_table_matches_the_engine():
    """The shipped table must describe the current rules (re-run calibrate_cellular.py after
    changing them)."""
    table = load_calibration()
    assert table["acceptance"] == list(ce.ACCEPTANCE)
    ref = table["levels"]["1"]["diameter_cells"][59]          # after 60 steps, level 1
    got = np.mean([ce.grow_cells((41, 41, 41), 1.0, 60, seed=s, device="cpu")[-1] for s in (7, 8)])
    assert abs(got / ref - 1) < 0.12
    assert steps_for_diameter(32, 1) < steps_for_diameter(32, 2) < steps_for_diameter(32, 3)
    assert steps_for_diameter(200, 1) > steps_for_diameter(100, 1)      # extrapolates
    assert expected_steps(32, [0.5, 0.5, 0]) == pytest.approx(
        0.5 * steps_for_diameter(32, 1) + 0.5 * steps_for_diameter(32, 2))


def _vessel_case(n=41):
    """Seed next to a straight vessel (a 3x3-cell tube along axis 2) through the middle."""
    state = np.zeros((n, n, n), np.int8)
    c = n // 2
    state[c - 1:c + 2, c - 1:c + 2, :] = ce.VESSEL
    return state, c


def test_rigid_vessel_is_never_overgrown_and_the_tumor_wraps_around_it():
    state, c = _vessel_case()
    ca = _automaton(state, seed=1)
    ca.seed(np.array([[c - 3, c, c]]))
    after = _grown(ca, 90)
    assert np.all(after[state == ce.VESSEL] == ce.VESSEL)
    tumor = after > 0
    assert tumor[c + 2:, c, c].any(), "the tumor must reach the far side of the vessel"


def test_pushed_vessel_moves_instead_of_being_overgrown():
    state, c = _vessel_case()
    yield_at = np.where(state == ce.VESSEL, 2, 0).astype(np.int16)
    ca = _automaton(state, seed=1, yield_at=yield_at, vessel_yield=2)
    ca.seed(np.array([[c - 3, c, c]]))
    after = _grown(ca, 90)
    vessel = after == ce.VESSEL
    assert not np.array_equal(vessel, state == ce.VESSEL), "some vessel cells moved"
    assert vessel.sum() >= 0.9 * (state == ce.VESSEL).sum()
    assert not np.any((after > 0) & vessel)


def test_organ_contour_gives_way_only_in_the_bulge_zone():
    n = 41
    state = np.zeros((n, n, n), np.int8)
    state[:, :, 24:] = ce.WALL                      # the organ ends at k = 24
    zone = np.zeros(state.shape, np.int16)
    zone[:, :, 24:27] = 2                           # 3 cells may give way
    seed = np.array([[n // 2, n // 2, 20]])
    rigid = _automaton(state, seed=2)
    rigid.seed(seed)
    assert not np.any(_grown(rigid, 70)[:, :, 24:] > 0)
    soft = _automaton(state, seed=2, yield_at=zone)
    soft.seed(seed)
    after = _grown(soft, 70)
    assert np.any(after[:, :, 24:27] > 0) and not np.any(after[:, :, 27:] > 0)


def test_necrosis_spreads_through_the_saturated_core_and_stays_tumor():
    ca = _automaton(np.zeros((41, 41, 41), np.int8), seed=4)
    ca.seed(np.array([[20, 20, 20]]))
    before = _grown(ca, 60)
    n_tumor = ca.count_tumor()
    ca.kill(np.array([[20, 20, 20]]))
    for _ in range(6):
        ca.necrose()
    after = ca.state_numpy()
    dead = after == ce.DEAD
    assert dead.sum() > 6 and ca.n_dead == dead.sum()
    assert np.all(before[dead] == ce.MAX_POPULATION)   # only saturated cells die
    assert ca.count_tumor() == n_tumor                  # dead cells are tumor


def test_same_seed_same_growth_other_seed_other_growth():
    def run(seed):
        ca = _automaton(np.zeros((31, 31, 31), np.int8), seed=seed)
        ca.seed(np.array([[15, 15, 15]]))
        return _grown(ca, 40)

    assert np.array_equal(run(5), run(5))
    assert not np.array_equal(run(5), run(6))


def test_devices():
    assert ce.resolve_device("auto").type in ("cpu", "cuda")
    assert ce.resolve_device("cpu").type == "cpu"
    with pytest.raises(InputError):
        ce.resolve_device("tpu-9")
    if not torch.cuda.is_available():
        with pytest.raises(DependencyError):
            ce.resolve_device("cuda")


def test_edge_blur_is_3d():
    """One saturated cell spreads equally along all three axes (the reference blurs 2D slices)."""
    state = np.zeros((15, 15, 15), np.int8)
    state[7, 7, 7] = ce.MAX_POPULATION
    w = edge_weight(state, 1.5)
    profiles = [w[6:9, 7, 7], w[7, 6:9, 7], w[7, 7, 6:9]]
    assert all(p[0] > 0.05 * p[1] for p in profiles)
    assert np.allclose(profiles[0], profiles[1]) and np.allclose(profiles[0], profiles[2])


def test_grid_resampling_keeps_volume_on_thick_slices():
    """A ball of cells averaged onto 1 x 1 x 6 mm voxels keeps its integral, and the
    volume-preserving mask holds the same volume."""
    grid = CAGrid(h_mm=0.5, half=30, center_vox=(30.0, 30.0, 5.0), spacing=(1.0, 1.0, 6.0),
                  roi_shape=(61, 61, 11))
    g = np.ogrid[0:61, 0:61, 0:61]
    ball = sum((gi - 30) ** 2 for gi in g) <= 20**2
    occ = grid.to_roi_average(ball)
    cell_mm3, voxel_mm3 = 0.5**3, 6.0
    assert occ.sum() * voxel_mm3 == pytest.approx(ball.sum() * cell_mm3, rel=0.01)
    n = int(round(ball.sum() * cell_mm3 / voxel_mm3))
    mask = volume_preserving_mask(occ, np.ones(occ.shape, bool), n)
    assert mask.sum() == n and occ[mask].min() >= occ[~mask].max()
    back = grid.to_cells(np.arange(61 * 61 * 11, dtype=np.int32).reshape(61, 61, 11), 0, -1)
    assert back[30, 30, 30] == np.ravel_multi_index((30, 30, 5), (61, 61, 11))
