"""Training of learned synthesis models (torch, MONAI): ``adversarial_data`` and
``adversarial_train`` train the ``adversarial`` appearance's generator
(``tumorsynth train-adversarial``). The networks and file formats live in
``synthesis.learned``."""
