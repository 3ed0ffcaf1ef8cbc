"""Training configuration: one dataclass that the CLI fills, the trainer reads and every
checkpoint carries (as a JSON-able dict), so a run can be resumed, audited and applied."""
from __future__ import annotations

import json
import math
from numbers import Real
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.files import shown
from .tasks import task_name

#: How the contrast jitter's factor is drawn from ``tumor_contrast``: log-uniformly (uniform in
#: log f, so faint tumors come more often) or uniformly (the rule of runs made before 2026-12-05,
#: whose config.json has no ``tumor_contrast_draw``).
CONTRAST_DRAWS = ("log-uniform", "uniform")

#: HU window mapped to [0, 1] before the network (abdominal soft tissue).
WINDOW_HU = (-175.0, 250.0)
#: Fields that must not change when resuming a run (they define the model and its labels).
FROZEN_ON_RESUME = ("organ", "model", "channels", "spacing_mm", "patch", "window_hu")


@dataclass
class TrainConfig:
    """Everything a training run depends on. Sizes: ``spacing_mm`` (isotropic voxel, mm),
    ``patch`` (voxels per side); time: ``max_minutes``; steps are optimizer steps."""

    data: str
    out: str
    organ: str = "liver"                  # one organ, or several: "liver,pancreas,kidney"
    method: str = "handcrafted"           # one method, or several used equally: "handcrafted,cellular"
    labels: str = "auto"                  # label convention of the dataset (auto: guessed)
    model: str = "unet"                   # unet | swinunetr | dynunet
    channels: tuple[int, ...] | None = None   # feature widths (None: the model's CPU/GPU default)
    spacing_mm: float = 1.5
    patch: int = 64
    batch_size: int = 1                   # cases per step; each gives samples_per_case patches
    samples_per_case: int = 2
    tumor_weight: float = 2.0             # patch centres: background 1, each organ 1, tumors this (shared by the organs)
    tumor_contrast: tuple[float, float] | None = None   # rescale synthetic tumors' contrast by f in [lo, hi], p 0.5 per organ
    tumor_contrast_draw: str = "log-uniform"  # how f is drawn (CONTRAST_DRAWS)
    lr: float = 1e-3
    weight_decay: float = 1e-5
    warmup_steps: int | None = None       # None: 5 % of max_steps (at most 200)
    max_steps: int = 2000
    max_minutes: float | None = None
    fit_schedule: bool = False            # measure the speed, then fit max_steps to max_minutes
    stop_at: int | None = None            # save and stop at this step (schedule unchanged)
    val_every: int = 250                  # 0: no validation (and no best.pt)
    ckpt_every: int = 50
    max_val_cases: int = 8
    val_fraction: float = 0.2             # held out when the data give no validation list
    seed: int = 0
    device: str = "auto"
    workers: int = 1
    cache_rate: float = 1.0
    synth_reuse: int = 1                  # epochs a case keeps its synthetic tumors (patches differ)
    prob: float = 0.5                     # probability of synthetic tumors in a healthy sample
    stage_mix: dict[str, float] = field(
        default_factory=lambda: {"early": 0.8, "intermediate": 0.1, "advanced": 0.1})
    num_tumors: tuple[int, int] = (1, 1)
    quality_model: str | None = None      # FreeTumor quality filter: checkpoint path or model id
    quality_threshold: float = 0.7
    window_hu: tuple[float, float] = WINDOW_HU
    amp: bool = True                      # mixed precision (CUDA only)
    resume: bool = False

    def __post_init__(self) -> None:
        self.organ = task_name(self.organ)
        self.method = ",".join(task_methods(self.method))
        self.check()

    def check(self) -> None:
        """InputError for values that cannot work, saying which flag to change."""
        for flag, value in (("--lr", self.lr), ("--spacing", self.spacing_mm), ("--prob", self.prob),
                            ("--threshold", self.quality_threshold), ("--cache-rate", self.cache_rate),
                            ("--max-minutes", self.max_minutes), ("weight_decay", self.weight_decay),
                            ("val_fraction", self.val_fraction)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise InputError(f"{flag} must be a finite number, got {shown(value)}")
        for flag, value in (("--max-steps", self.max_steps), ("--patch", self.patch), ("--batch-size", self.batch_size),
                            ("--samples-per-case", self.samples_per_case), ("--val-every", self.val_every),
                            ("--ckpt-every", self.ckpt_every), ("--workers", self.workers), ("--seed", self.seed)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InputError(f"{flag} must be a whole number, got {shown(value)}")
        if self.seed < 0:
            raise InputError(f"--seed must be >= 0, got {self.seed}")
        if self.val_every < 0 or self.ckpt_every < 0:
            raise InputError("--val-every and --ckpt-every must be >= 0 (0: never)")
        if not 0.0 <= self.quality_threshold <= 1.0 or not 0.0 <= self.cache_rate <= 1.0:
            raise InputError("--threshold and --cache-rate must be in [0, 1]")
        if self.max_steps < 1:
            raise InputError(f"--max-steps must be >= 1, got {self.max_steps}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise InputError(f"--max-minutes must be > 0, got {self.max_minutes}")
        if self.fit_schedule and self.max_minutes is None:
            raise InputError("--fit-schedule needs --max-minutes (the budget the schedule is fitted to)")
        if self.spacing_mm <= 0:
            raise InputError(f"--spacing must be > 0 mm, got {self.spacing_mm}")
        if self.patch < 16 or self.patch % 8:
            raise InputError(f"--patch must be a multiple of 8 (>= 16; the network may need more), got {self.patch}")
        if self.synth_reuse < 1:
            raise InputError(f"--synth-reuse must be >= 1, got {self.synth_reuse}")
        if self.batch_size < 1 or self.samples_per_case < 1:
            raise InputError("--batch-size and --samples-per-case must be >= 1")
        if self.tumor_weight < 0:
            raise InputError(f"--tumor-weight must be >= 0, got {self.tumor_weight}")
        if not 0.0 <= self.prob <= 1.0:
            raise InputError(f"--prob must be in [0, 1], got {self.prob}")
        if self.lr <= 0:
            raise InputError(f"--lr must be > 0, got {self.lr}")
        if self.workers < 0:
            raise InputError(f"--workers must be >= 0, got {self.workers}")
        if self.tumor_contrast is not None:
            pair = tuple(self.tumor_contrast) if isinstance(self.tumor_contrast, (list, tuple)) else ()
            numbers = len(pair) == 2 and all(isinstance(v, Real) and not isinstance(v, bool)
                                             and math.isfinite(v) for v in pair)
            if not numbers or not 0.0 < pair[0] <= pair[1] <= 3.0:
                raise InputError(f"--tumor-contrast must be LO:HI with 0 < LO <= HI <= 3, got {shown(self.tumor_contrast)}")
            self.tumor_contrast = (float(pair[0]), float(pair[1]))
        if self.tumor_contrast_draw not in CONTRAST_DRAWS:
            raise InputError(f"the tumor contrast draw must be one of {', '.join(CONTRAST_DRAWS)}, "
                             f"got {shown(self.tumor_contrast_draw)}")
        task_methods(self.method)

    @property
    def warmup(self) -> int:
        if self.warmup_steps is not None:
            return max(0, int(self.warmup_steps))
        return min(200, max(1, self.max_steps // 20))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("channels", "num_tumors", "window_hu", "tumor_contrast"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "tumor_contrast_draw" not in kwargs and kwargs.get("tumor_contrast") is not None:
            kwargs["tumor_contrast_draw"] = saved_contrast_draw(kwargs)
        for key in ("channels", "num_tumors", "window_hu", "tumor_contrast"):
            if kwargs.get(key) is not None:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)


def resumed_contrast_draw(run_dir: str | Path) -> str | None:
    """The contrast draw of the run in ``run_dir`` (its ``config.json``; "uniform" for a run made
    before the draw was recorded), None when there is no readable run there. A resumed run keeps
    its draw unless the user names one, so its tumors are drawn as they were."""
    path = Path(run_dir).expanduser() / "config.json"
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict):
        return None
    draw = saved_contrast_draw(saved)
    return draw if draw in CONTRAST_DRAWS else None


def saved_contrast_draw(saved: dict[str, Any]) -> str | None:
    """The contrast draw a saved configuration records: "uniform" when it has a contrast range
    but no draw (a run made before the draw was recorded)."""
    if saved.get("tumor_contrast") is not None and "tumor_contrast_draw" not in saved:
        return "uniform"
    return saved.get("tumor_contrast_draw")


def task_methods(method: str) -> tuple[str, ...]:
    """The synthesis methods of a run: "handcrafted" -> ("handcrafted",); "handcrafted,cellular"
    -> both (each makes an equal share of the tumors). InputError when none is given."""
    out: list[str] = []
    for name in (m.strip().lower() for m in str(method).split(",")):
        if name and name not in out:
            out.append(name)
    if not out:
        raise InputError(f"no synthesis method given ('{method}'); use e.g. handcrafted or handcrafted,cellular")
    return tuple(out)


__all__ = ["TrainConfig", "WINDOW_HU", "FROZEN_ON_RESUME", "task_methods"]
