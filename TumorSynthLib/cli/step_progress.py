"""Progress of the stepping stages (cellular growth, diffusion denoising) of a command that
synthesises tumors: a tqdm bar per stage on stderr for people, a ``progress`` event per step
with ``--events jsonl`` (``stage``, ``stage_step``, ``stage_total``, ``tumor``: 1, 2, ...).

Use: ``with StepProgress(events) as progress, listen_steps(progress): synthesize(...)``.
One-shot stages (a single step) are not shown.
"""
from __future__ import annotations

import sys
from typing import Any

#: The words the bar shows per stage.
STAGE_WORDS = {"geometry": "growing", "appearance": "denoising"}


class StepProgress:
    """A ``listen_steps`` callback (see the module docstring)."""

    def __init__(self, events: Any, step: int = 1) -> None:
        self.events, self.step = events, int(step)
        self._tumors: dict[int, int] = {}
        self._current: tuple[int, str, int] | None = None     # (tumor, stage, total)
        self._bar: Any = None

    def __enter__(self) -> "StepProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __call__(self, job: Any) -> None:
        tumor = self._tumors.setdefault(id(job), len(self._tumors) + 1)
        stage, step, total = str(job.stage), int(job.step), int(job.total_steps)
        current = self._current
        if current is not None and (current[0], current[1]) != (tumor, stage):
            self._report(current[0], current[1], current[2], current[2])   # that stage ended
            self._current = None
        if stage in STAGE_WORDS and total > 1:
            self._current = (tumor, stage, total)
            self._report(tumor, stage, step, total)

    def _report(self, tumor: int, stage: str, step: int, total: int) -> None:
        if self.events.mode == "jsonl":
            self.events.emit("progress", self.step, message=STAGE_WORDS.get(stage, stage), tumor=tumor,
                             stage=stage, stage_step=step, stage_total=total)
            return
        if not self.events.enabled:
            return
        if self._bar is None or self._bar.total != total or self._bar.desc != self._desc(tumor, stage):
            self.close()
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=self._desc(tumor, stage), file=sys.stderr, leave=False,
                             dynamic_ncols=True)
        self._bar.n = step
        self._bar.refresh()

    @staticmethod
    def _desc(tumor: int, stage: str) -> str:
        return f"tumor {tumor} {STAGE_WORDS.get(stage, stage)}"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


__all__ = ["STAGE_WORDS", "StepProgress"]
