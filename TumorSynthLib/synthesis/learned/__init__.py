"""Learned synthesis models (torch, imported on use). Not a provider package: nothing here is
imported when the engine lists its providers.

* ``gan``: the ``adversarial`` appearance's generator and voxel-wise discriminator (MONAI
  UNets), their configuration and the synthesis formula shared by training and inference;
* ``gan_checkpoint``: the ``tumorsynth-adversarial`` file format (weights only, SHA256 and
  configuration checks, a small cache of loaded generators).

The training side (data, loop, CLI) is ``TumorSynthLib.generative``.
"""
