"""The model room: what the network is and where its files are.

``spec`` (ModelSpec, the one architecture and I/O contract shared by trainer, exporter and runtime),
``generator`` (the paper's U-Net, the served LabColorizer wrapper, BatchNorm folding), ``efficientnet``
and ``effnet_unet`` (the ImageNet-pretrained encoder and the generator built on it), ``ab_distribution``
(colour as a probability over in-gamut ab bins and its decoding, the optional distribution head), ``bundle`` (finding a
model's files: the embedded default in ``weights/``, bundles, trainer checkpoints). torch is imported only
by the generator modules, and only when a torch backend or the trainer needs them.

May import: runtime.errors only. Imported by every other room and by the trainer.
"""
