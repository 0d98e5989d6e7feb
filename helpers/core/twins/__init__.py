"""Tiny twins: the course's pipelines with a few thousand random weights, built in code.

Each builder returns a diffusers pipeline of the same class as the real model, small enough to
run in seconds on a CPU. :func:`helpers.core.registry.ensure_twin` saves it with ``save_pretrained``;
:func:`helpers.core.registry.load_pipeline` loads it back with ``from_pretrained``.
Seeds are fixed, so a twin is the same on every machine.

Two twins are also *trained* by the course, on clips of moving digits it makes itself (:mod:`clips`), and
ship in data/twins: SVD (``python -m helpers.core.twins.train svd``, :mod:`train`) and LTX-Video
(``... train ltx``, :mod:`train_ltx`). The tiny profile loads those instead of the random ones.
"""
