"""Learned synthesis models (torch, imported on use): the mask-conditioned diffusion inpainter
of the ``diffusion`` appearance (methods.md section 3) and the generator of the
``adversarial`` appearance (methods.md section 4).

Not a provider package (nothing here is imported when the engine lists its providers):

* ``config``: ``DiffusionConfig`` (pixel or latent configuration) and the fixed HU window;
* ``networks``: MONAI's ``DiffusionModelUNet``, ``AutoencoderKL``, ``DDPMScheduler`` and
  ``DDIMScheduler`` built from a config (none is hand-written);
* ``checkpoint``: the ``tumorsynth-diffusion`` file format, atomic saves, weights-only loads
  with SHA256 and configuration checks, the model cache;
* ``sampler``: one inpainting run, one denoiser call per step (live front ends show it forming);
* ``patch``: the isotropic patch around a tumor and the way back to the scan's voxels (numpy).
* ``loading``: what both formats share: model id or path, the default per task, strict
  weight loading, one cache of loaded models;
* ``gan``: the ``adversarial`` appearance's generator and voxel-wise discriminator (MONAI
  UNets), their configuration and the synthesis formula shared by training and inference;
* ``gan_checkpoint``: the ``tumorsynth-adversarial`` file format (weights only, SHA256 and
  configuration checks, a small cache of loaded generators).

The training side (data, loop, CLI) is ``TumorSynthLib.generative``.
"""
