"""The cellular automaton of the ``cellular`` method: growth rules on a torch grid.

One code path for CPU and CUDA (``device="auto"`` takes CUDA when torch sees one). The grid is
isotropic (the caller resamples the scan to cells of ``h`` mm); the automaton knows only cells.

States (int8, ``specs/methods.md`` section 2):

* ``0`` healthy organ tissue, ``1..10`` tumor cell population, ``DEAD`` (-1) necrosis;
* walls: ``WALL`` (-2) outside the organ, ``VESSEL`` (-3), ``RIGID`` (-4: beyond the ROI, other
  organs, earlier tumors, the one-cell padding).

One growth step, vectorised (no loop over cells):

1. every cell with population ``>= 1`` proliferates (+1, saturating at 10);
2. every cell with population ``>= 5`` (as it was before step 1) invades: it picks one of its
   26 neighbours with a uniform integer in [0, 26) mapped through the offset table; a tissue
   target (population 0..9) takes +1 with the target's acceptance probability (1.0 / 0.3 / 0.1
   by tissue density level, really applied); several invaders of one target add up
   (``index_add_``) and the sum saturates at 10;
3. saturated invaders (population 10) that picked a wall press on it. A wall cell with a
   pressure threshold (``yield_at`` > 0) gives way after that many pushes: a ``WALL`` cell
   becomes invadable tissue (a bulge of the organ contour), a ``VESSEL`` cell moves one cell
   further along the push direction when that cell is healthy tissue (the vessel bends, it is
   never overgrown).

A necrosis step: every dead cell picks a uniform neighbour and kills it when it is saturated.

Speed: a step is ~10 passes over int8 tensors plus gathers / scatters over the invading cells.
On CPU two primitives go through NumPy (zero-copy views) because torch's CPU ``nonzero`` and
``count_nonzero`` are ~10x slower than NumPy's; on CUDA they stay in torch.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ...core.errors import DependencyError, InputError

HEALTHY, DEAD, WALL, VESSEL, RIGID = 0, -1, -2, -3, -4
MAX_POPULATION = 10
INVADE_FROM = 5
SEED_POPULATION = 5
#: Invasion acceptance per tissue density level (level 1 easiest).
ACCEPTANCE = (1.0, 0.3, 0.1)
#: Acceptance of a wall cell once it has given way (soft tissue).
YIELDED_ACCEPTANCE = 1.0
#: Threads for the automaton on CPU: its tensors are small (<= 65^3 cells), more threads only
#: add overhead (measured 10x slower with 2 threads on a busy 2-core machine).
CPU_THREADS = 1
#: Enclosed cells are retired from invading every this many growth steps, once there are at
#: least this many invaders (below, the erosion costs more than the draws it saves).
ACTIVE_REFRESH_STEPS = 4
ACTIVE_REFRESH_MIN = 4096


def neighbour_offsets() -> np.ndarray:
    """The 26 offsets of the 3x3x3 neighbourhood (self excluded), shape (26, 3), a fixed order."""
    grid = np.stack(np.meshgrid(*([np.arange(-1, 2)] * 3), indexing="ij"), axis=-1).reshape(-1, 3)
    return grid[np.any(grid != 0, axis=1)].astype(np.int64)


def resolve_device(device: Any = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available else CPU; an explicit CUDA request without CUDA raises."""
    name = str(device).strip().lower() if device is not None else "auto"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"unknown device '{device}'; use auto, cpu or cuda") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DependencyError("device 'cuda' was requested but torch sees no CUDA GPU; use "
                              "device=auto or cpu, or install a CUDA build of torch")
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"device '{device}' is not supported; use auto, cpu or cuda")
    return dev


@contextmanager
def cpu_threads(device: torch.device, threads: int | None = None) -> Iterator[None]:
    """Run torch CPU ops with ``threads`` threads (default ``CPU_THREADS``), then restore."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads or CPU_THREADS))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def flat_nonzero(mask: torch.Tensor) -> torch.Tensor:
    """Indices (int64) of the true entries of a flat bool tensor."""
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return torch.nonzero(mask).squeeze(1)


def count_true(mask: torch.Tensor) -> int:
    """Number of true entries of a bool tensor."""
    if mask.device.type == "cpu":
        return int(np.count_nonzero(mask.numpy()))
    return int(torch.count_nonzero(mask))


def equivalent_diameter_cells(n_cells: int | float) -> float:
    """Diameter (in cells) of the sphere holding ``n_cells`` cells: ``(6 n / pi)^(1/3)``."""
    return float((6.0 * max(float(n_cells), 0.0) / np.pi) ** (1.0 / 3.0))


class CellularAutomaton:
    """A stochastic 3D cellular automaton on one grid (see the module docstring).

    ``state``: int8 codes (shape (n0, n1, n2)); ``acceptance``: float probability per cell that
    an invasion of it succeeds (read for tissue cells only: walls, dead cells and the padding
    refuse every invasion; a wall that gives way accepts with ``YIELDED_ACCEPTANCE``);
    ``yield_at``: pushes a wall cell takes before it gives way (0 = never), or None;
    ``vessel_yield``: the threshold a vessel cell carries to the cell it moves into.
    All randomness comes from one ``torch.Generator`` seeded with ``seed``.
    """

    def __init__(self, state: np.ndarray, acceptance: np.ndarray, *, seed: int,
                 yield_at: np.ndarray | None = None, vessel_yield: int = 0,
                 device: Any = "auto") -> None:
        state = np.asarray(state)
        if state.ndim != 3 or min(state.shape) < 1:
            raise InputError(f"the automaton needs a 3D grid, got shape {state.shape}")
        if np.shape(acceptance) != state.shape:
            raise InputError("acceptance must have the grid's shape")
        self.device = resolve_device(device)
        with cpu_threads(self.device):
            self._build(state, acceptance, seed, yield_at, vessel_yield)

    def _build(self, state: np.ndarray, acceptance: np.ndarray, seed: int,
               yield_at: np.ndarray | None, vessel_yield: int) -> None:
        self.shape = tuple(int(v) for v in state.shape)
        self.padded_shape = tuple(v + 2 for v in self.shape)
        self._s = self._padded(state.astype(np.int8), RIGID, torch.int8)
        open_tissue = np.where(state >= HEALTHY, np.asarray(acceptance, dtype=np.float32), 0.0)
        self._accept = self._padded(open_tissue.astype(np.float32), 0.0, torch.float32)
        strides = np.array([self.padded_shape[1] * self.padded_shape[2], self.padded_shape[2], 1])
        self._offsets = torch.as_tensor(neighbour_offsets() @ strides, device=self.device)
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(int(seed))
        self._const = {v: torch.full_like(self._s, v)
                       for v in (1, INVADE_FROM, MAX_POPULATION, DEAD, WALL)}
        self._active = torch.ones_like(self._s, dtype=torch.bool)
        self.steps_grown = 0
        self._invaders = 0
        self._inc = torch.zeros_like(self._s)
        self._one = torch.ones(1, dtype=torch.int8, device=self.device)
        self._pushable = yield_at is not None and bool(np.any(np.asarray(yield_at) > 0))
        if self._pushable:
            self._yield_at = self._padded(np.asarray(yield_at, dtype=np.int16), 0, torch.int16)
            self._pressure = torch.zeros_like(self._yield_at)
            self._vessel_yield = int(vessel_yield)
        self.n_dead = 0

    # -- set-up -------------------------------------------------------------------------------
    def _padded(self, array: np.ndarray, fill: Any, dtype: torch.dtype) -> torch.Tensor:
        out = np.full(self.padded_shape, fill, dtype=array.dtype)
        out[1:-1, 1:-1, 1:-1] = array
        return torch.as_tensor(out.ravel(), dtype=dtype, device=self.device).contiguous()

    def flat_index(self, cells: np.ndarray) -> torch.Tensor:
        """Flat indices (padded grid) of (N, 3) integer cell coordinates of the unpadded grid."""
        c = np.asarray(cells, dtype=np.int64).reshape(-1, 3) + 1
        flat = np.ravel_multi_index(tuple(c.T), self.padded_shape)
        return torch.as_tensor(flat, dtype=torch.int64, device=self.device)

    def seed(self, cells: np.ndarray, population: int = SEED_POPULATION) -> int:
        """Set the healthy cells among ``cells`` (N, 3) to ``population``; returns how many."""
        idx = self.flat_index(cells)
        idx = idx[self._s[idx] == HEALTHY]
        self._s.index_fill_(0, idx, int(population))
        return int(torch.unique(idx).numel())

    def kill(self, cells: np.ndarray) -> int:
        """Make the saturated cells among ``cells`` dead; returns the dead count after."""
        idx = self.flat_index(cells)
        idx = idx[self._s[idx] == MAX_POPULATION]
        self._s.index_fill_(0, idx, DEAD)
        self._accept.index_fill_(0, idx, 0.0)
        self.n_dead = count_true(torch.eq(self._s, self._const[DEAD]))
        return self.n_dead

    # -- steps --------------------------------------------------------------------------------
    def grow(self) -> int:
        """One growth step (proliferation, invasion, wall pressure); returns the tumor cells."""
        with cpu_threads(self.device):
            return self._grow()

    def _grow(self) -> int:
        s, g = self._s, self._generator
        if self.steps_grown % ACTIVE_REFRESH_STEPS == 0 and self._invaders >= ACTIVE_REFRESH_MIN:
            self._refresh_active()
        self.steps_grown += 1
        invaders = flat_nonzero(torch.ge(s, self._const[INVADE_FROM]).logical_and_(self._active))
        k = self._invaders = int(invaders.numel())
        if k:
            pick = torch.randint(0, 26, (k,), generator=g, device=self.device)
            luck = torch.rand(k, generator=g, device=self.device)
            target = invaders + self._offsets[pick]
            # Walls, dead cells and padding have acceptance 0; saturation is the clamp below.
            take = torch.lt(luck, self._accept[target])
            self._inc.zero_()
            self._inc.index_add_(0, target, take.view(torch.int8))
            if self._pushable:
                pressed = (s[invaders] == MAX_POPULATION) & (s[target] <= WALL)
        s.add_(torch.ge(s, self._const[1]).view(torch.int8))
        if k:
            s.add_(self._inc)
        torch.minimum(s, self._const[MAX_POPULATION], out=s)
        if k and self._pushable:
            self._press(invaders[pressed], target[pressed])
        return self.count_tumor()

    def _refresh_active(self) -> None:
        """Retire enclosed cells: a cell whose whole 3x3x3 block is saturated tumor or
        unyielding wall cannot change anything by invading (every pick would be refused), so it
        stops drawing. Enclosed cells stay enclosed while growing (populations never fall), so
        a mask refreshed every few steps is a safe subset. Separable erosion: three passes."""
        s = self._s
        full = torch.eq(s, self._const[MAX_POPULATION])
        walls = torch.le(s, self._const[WALL])
        if self._pushable:
            walls &= torch.eq(self._yield_at, torch.zeros_like(self._yield_at))
        full = (full | walls).view(self.padded_shape)
        e = full[:-2] & full[1:-1] & full[2:]
        e = e[:, :-2] & e[:, 1:-1] & e[:, 2:]
        e = e[:, :, :-2] & e[:, :, 1:-1] & e[:, :, 2:]
        active = self._active.view(self.padded_shape)
        active[1:-1, 1:-1, 1:-1] = ~e

    def _press(self, pushers: torch.Tensor, walls: torch.Tensor) -> None:
        """Saturated ``pushers`` that picked the wall cells ``walls`` press on them; walls past
        their threshold give way (WALL -> tissue, VESSEL -> moves one cell away from the
        pusher when that cell is healthy tissue; else it stays and the tumor wraps around)."""
        keep = self._yield_at[walls] > 0
        q, p = walls[keep], pushers[keep]
        if not q.numel():
            return
        self._pressure.index_add_(0, q, torch.ones_like(q, dtype=torch.int16))
        ready = self._pressure[q] >= self._yield_at[q]
        q, p = q[ready], p[ready]
        if not q.numel():
            return
        s = self._s
        kind = s[q]
        opened = q[kind == WALL]
        vq, vp = q[kind == VESSEL], p[kind == VESSEL]
        s.index_fill_(0, opened, HEALTHY)
        dest = 2 * vq - vp
        free = s[dest] == HEALTHY
        moved, dest = vq[free], dest[free]
        s.index_fill_(0, moved, HEALTHY)
        s.index_fill_(0, dest, VESSEL)
        opened = torch.cat([opened, moved])
        self._accept.index_fill_(0, opened, YIELDED_ACCEPTANCE)
        self._accept.index_fill_(0, dest, 0.0)
        self._pressure.index_fill_(0, opened, 0)
        self._pressure.index_fill_(0, dest, 0)
        self._yield_at.index_fill_(0, dest, self._vessel_yield)

    def necrose(self) -> int:
        """One necrosis step: each dead cell kills one uniformly chosen saturated neighbour.
        Returns the dead count."""
        with cpu_threads(self.device):
            return self._necrose()

    def _necrose(self) -> int:
        s = self._s
        dead = flat_nonzero(torch.eq(s, self._const[DEAD]))
        if dead.numel():
            pick = torch.randint(0, 26, (int(dead.numel()),), generator=self._generator, device=self.device)
            target = dead + self._offsets[pick]
            killed = target[s[target] == MAX_POPULATION]
            s.index_fill_(0, killed, DEAD)
            self._accept.index_fill_(0, killed, 0.0)
        self.n_dead = count_true(torch.eq(s, self._const[DEAD]))
        return self.n_dead

    # -- read-outs ----------------------------------------------------------------------------
    def count_tumor(self) -> int:
        """Tumor cells: population >= 1 plus dead cells."""
        return count_true(torch.ge(self._s, self._const[1])) + self.n_dead

    def state_numpy(self) -> np.ndarray:
        """A copy of the state (int8, unpadded grid shape)."""
        grid = self._s.view(self.padded_shape)[1:-1, 1:-1, 1:-1]
        return grid.cpu().numpy().copy()

    def saturated_cells(self) -> np.ndarray:
        """(N, 3) coordinates of the saturated cells (unpadded grid)."""
        idx = flat_nonzero(torch.eq(self._s, self._const[MAX_POPULATION])).cpu().numpy()
        return np.stack(np.unravel_index(idx, self.padded_shape), axis=1) - 1

    def random_integers(self, high: int, n: int) -> np.ndarray:
        """``n`` integers in [0, high) from the automaton's generator (for choices that depend on
        the grown state, so they stay reproducible however the steps are chunked)."""
        return torch.randint(0, int(high), (int(n),), generator=self._generator,
                             device=self.device).cpu().numpy()


def grow_cells(shape: Sequence[int], acceptance: float, steps: int, seed: int,
               device: Any = "auto") -> list[float]:
    """Equivalent diameter (cells) after each of ``steps`` steps of one seed in the middle of a
    homogeneous grid of ``acceptance`` (the calibration experiment)."""
    state = np.zeros(tuple(shape), dtype=np.int8)
    ca = CellularAutomaton(state, np.full(state.shape, acceptance, np.float32), seed=seed, device=device)
    ca.seed(np.array([[v // 2 for v in shape]]))
    return [equivalent_diameter_cells(ca.grow()) for _ in range(int(steps))]


__all__ = [
    "ACCEPTANCE",
    "CellularAutomaton",
    "DEAD",
    "HEALTHY",
    "INVADE_FROM",
    "MAX_POPULATION",
    "RIGID",
    "SEED_POPULATION",
    "VESSEL",
    "WALL",
    "count_true",
    "cpu_threads",
    "equivalent_diameter_cells",
    "flat_nonzero",
    "grow_cells",
    "neighbour_offsets",
    "resolve_device",
]
