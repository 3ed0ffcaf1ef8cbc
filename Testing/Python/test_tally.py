"""Training statistics come from the per-sample records, so the work done in DataLoader
workers is counted (the transform object in the main process never sees those calls)."""
from __future__ import annotations

import numpy as np
import torch


def test_tally_counts_the_work_of_loader_workers(phantom_small):
    from monai.data import DataLoader, Dataset, MetaTensor

    from TumorSynthLib.transforms import RandTumorSynthd, SynthesisTally

    ct, organs, _ = phantom_small
    liver = (np.asarray(organs.array) == 5).astype(np.float32)
    affine = torch.as_tensor(ct.affine)
    sample = {"image": MetaTensor(torch.as_tensor(np.asarray(ct.array, np.float32))[None], affine=affine),
              "label": MetaTensor(torch.as_tensor(liver)[None], affine=affine)}
    synth = RandTumorSynthd(organ="liver", prob=1.0, labels="binary", stage_mix={"early": 1.0})
    synth.set_random_state(3)
    loader = DataLoader(Dataset([sample, sample], synth), batch_size=1, num_workers=1)
    tally = SynthesisTally()
    for batch in loader:
        tally.add(batch)
    assert synth.stats["calls"] == 0                     # the calls happened in the worker ...
    assert tally.stats["samples"] == 2 and tally.stats["applied"] == 2 and tally.stats["tumors"] == 2
    assert tally.stats["seconds"] > 0                    # ... and are counted from the records


def test_tally_counts_every_transform_of_a_chain(phantom_small):
    """Training chains one ``RandTumorSynthd`` per organ and method: every record is kept."""
    from monai.data import MetaTensor
    from monai.transforms import Compose

    from TumorSynthLib.transforms import META_KEY, RandTumorSynthd, SynthesisTally

    ct, organs, _ = phantom_small
    affine = torch.as_tensor(ct.affine)
    sample = {"image": MetaTensor(torch.as_tensor(np.asarray(ct.array, np.float32))[None], affine=affine),
              "label": MetaTensor(torch.as_tensor(np.asarray(organs.array, np.float32))[None], affine=affine)}
    chain = Compose([RandTumorSynthd(organ=organ, prob=1.0, labels="totalseg", stage_mix={"early": 1.0})
                     for organ in ("liver", "kidney")])
    chain.set_random_state(5)
    out = chain(sample)
    tally = SynthesisTally()
    tally.add({META_KEY: [out[META_KEY]]})
    assert tally.stats["samples"] == 1 and tally.stats["applied"] == 2 and tally.stats["tumors"] == 2


def test_tally_counts_a_reused_case_once():
    """``--synth-reuse``: later batches carry the same case's record again; its synthesis
    happened once and is counted once (a new synthesis of the same case is counted again)."""
    from TumorSynthLib.transforms import META_KEY, SynthesisTally, chained_records

    first = chained_records(None, {"seed": 7, "applied": True, "skipped": None, "seconds": 0.25,
                                   "tumors": [{"organ": "liver"}]})
    second = chained_records(None, {"seed": 8, "applied": True, "skipped": None, "seconds": 0.5,
                                    "tumors": [{"organ": "liver"}]})
    tally = SynthesisTally()
    for texts in ([first, first], [first], [first, second]):
        tally.add({META_KEY: texts})
    assert tally.stats["samples"] == 2 and tally.stats["applied"] == 2 and tally.stats["tumors"] == 2
    assert abs(tally.stats["seconds"] - 0.75) < 1e-9
