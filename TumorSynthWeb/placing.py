"""One click -> one tumor, with the engine off the server's event loop.

The split comes from ``TumorSynthSlicer.placement_logic``: reading the inputs and writing the
outputs touch MRML nodes and run on the event loop (the thread that renders the views); the
engine (``PendingPlacement.run``, ``LiveJob.begin / advance / finalize``) runs in a worker
thread, so the views keep rendering and other sessions keep working while a tumor is made.
``ClickGate`` (``click_logic``) keeps one job per session; a live growth can be stopped.

Example::

    runner = PlacementRunner(report=print)
    placement = await runner.place(session, ras, request, organ_mask, live=False)
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from TumorSynthSlicer.click_logic import ClickGate
from TumorSynthSlicer.placement_logic import LiveJob, PendingPlacement, Placement, TumorRequest

#: Engine work of every session shares these threads (2 cores on the reference machine).
_ENGINE_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tumorsynth-engine")
#: Preview frames per growth stage: each redraws the "(forming)" segment in every view, which
#: costs more than the engine steps on a CPU renderer, so the steps per tick follow the stage.
FRAMES_PER_STAGE = 10
STEPS_PER_TICK = 4
#: Pause between growth ticks (s): the views render each preview, the user sees it grow.
TICK_PAUSE_S = 0.05


@dataclass
class Progress:
    """What the page shows while a tumor is made: stage, fraction in [0, 1] (None: unknown)."""

    text: str
    fraction: float | None = None


class PlacementRunner:
    """Runs placements for one session; ``report(Progress | None)`` is called on the event
    loop as the work advances (None when it ends)."""

    def __init__(self, report: Callable[[Progress | None], None]) -> None:
        self.gate = ClickGate()
        self.report = report
        self._stop = False

    @property
    def busy(self) -> bool:
        return self.gate.busy

    def request_stop(self) -> None:
        """Stop a live growth: the tumor is kept as grown so far."""
        self._stop = True

    async def place(self, session: Any, ras: Sequence[float], request: TumorRequest,
                    organ_mask: np.ndarray | None, live: bool) -> Placement:
        """Make the tumor(s) of one click; raises what the engine raises (outputs unchanged)."""
        self.gate.start("growth" if live else "placement")
        self._stop = False
        try:
            if live:
                return await self._grow(session, ras, request, organ_mask)
            return await self._place_at_once(session, ras, request, organ_mask)
        finally:
            self.gate.finish()
            self.report(None)

    async def _place_at_once(self, session: Any, ras: Sequence[float], request: TumorRequest,
                             organ_mask: np.ndarray | None) -> Placement:
        self.report(Progress("Synthesizing the tumor..."))
        pending = PendingPlacement(session, ras, request, organ_mask)
        try:
            await _in_thread(pending.run)
        except BaseException:
            pending.discard()
            raise
        return pending.record()

    async def _grow(self, session: Any, ras: Sequence[float], request: TumorRequest,
                    organ_mask: np.ndarray | None) -> Placement:
        self.report(Progress("Placing the seed...", 0.0))
        job = LiveJob(session, ras, request, organ_mask, stepsPerTick=STEPS_PER_TICK, start=False)
        try:
            await _in_thread(job.begin)
            total = int(getattr(job.job.state, "total_steps", 0) or 0)
            job.stepsPerTick = max(STEPS_PER_TICK, -(-total // FRAMES_PER_STAGE))
            while not job.done and not self._stop:
                state = await _in_thread(job.advance)
                job.show(state)
                self.report(Progress(f"Growing: {state.stage}", float(state.fraction)))
                await asyncio.sleep(TICK_PAUSE_S)  # let the views render the new preview
            self.report(Progress("Finishing the tumor...", 1.0))
            result = await _in_thread(job.finalize)
        except BaseException:
            job.stop()
            raise
        return job.record(result)


async def _in_thread(function: Callable[[], Any]) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_ENGINE_THREADS, function)


__all__ = ["PlacementRunner", "Progress", "STEPS_PER_TICK"]
