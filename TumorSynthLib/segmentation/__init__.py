"""Tumor segmentation: train, apply and evaluate models, with tumors synthesised online.

Modules (torch and MONAI are imported by them, never by ``TumorSynthLib``):
``config`` (TrainConfig), ``datasets`` (find / check pairs, labels -> {0, 1, 2}), ``pipeline``
(MONAI transforms, seeded dataset and sampler), ``models`` (UNet / SwinUNETR / DynUNet),
``optim`` (AdamW, warm-up + cosine, DiceCE), ``train`` (the loop), ``validation``,
``checkpoint`` (weights-only files), ``distributed`` (torchrun / DDP), ``device`` (device choice,
out-of-memory messages), ``infer`` (sliding window, back to the input grid), ``postprocess``
(components), ``metrics``, ``evaluate`` and ``report`` (CSV / JSON / PNG).
"""
