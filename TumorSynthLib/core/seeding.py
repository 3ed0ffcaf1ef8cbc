"""The project's one seeding rule.

A tumor's random stream is ``default_rng(SeedSequence([seed, crc32(case_id), variant, index]))``
(DESIGN.md "Determinism"): the same seed, case and position give the same tumor on any machine,
and two tumors of one case never share a stream. Torch code seeds a ``torch.Generator`` from one
integer drawn from this generator; MONAI transforms draw one integer from their ``self.R``.
A retry (quality filter, a sampled place that did not fit) uses child ``attempt - 1`` of the
same sequence: deterministic, and distinct from every other tumor's stream.
"""
from __future__ import annotations

import zlib

import numpy as np

from .errors import InputError
from .files import shown


def tumor_seed_sequence(seed: int, case_id: str = "", variant: int = 0, index: int = 0) -> np.random.SeedSequence:
    """The seed sequence of tumor ``index`` of variant ``variant`` of case ``case_id``."""
    if isinstance(seed, bool) or int(seed) < 0:
        raise InputError(f"seed must be an integer >= 0, got {shown(seed)}")
    return np.random.SeedSequence([int(seed), zlib.crc32(str(case_id).encode()), int(variant), int(index)])


def tumor_rng(seed: int, case_id: str = "", variant: int = 0, index: int = 0,
              attempt: int = 0) -> np.random.Generator:
    """The generator of one tumor; ``attempt`` >= 1 gives the stream of a retry."""
    sequence = tumor_seed_sequence(seed, case_id, variant, index)
    if int(attempt) == 0:
        return np.random.default_rng(sequence)
    return np.random.default_rng(sequence.spawn(int(attempt))[-1])


def torch_seed(rng: np.random.Generator) -> int:
    """One integer for a ``torch.Generator`` (drawn from ``rng``, so it follows the rule)."""
    return int(rng.integers(0, 2**63 - 1))


__all__ = ["torch_seed", "tumor_rng", "tumor_seed_sequence"]
