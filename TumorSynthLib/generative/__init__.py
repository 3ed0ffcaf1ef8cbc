"""Training of the learned synthesis models (the segmentation layer's level: it reads
image/label pairs as ``tumorsynth train`` does and uses ``synthesis.learned`` below it).

* ``data``: tumor-centred crops of image/label pairs with tumor labels, and the random patches
  drawn from them (the same patch geometry the ``diffusion`` appearance uses at inference);
* ``metrics``: the quality bar of methods.md section 3 on held-out patches;
* ``trainer``: ``tumorsynth train-diffusion`` (pixel or latent), resumable, with budgets and
  JSON-lines events;
* ``adversarial_data`` and ``adversarial_train``: ``tumorsynth train-adversarial``, the
  ``adversarial`` appearance's generator against a frozen segmentation model.
"""
