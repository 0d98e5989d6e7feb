"""Tiny twins: the course's pipelines with a few thousand random weights, built in code.

Each builder returns a diffusers pipeline of the same class as the real model, small enough to
run in seconds on a CPU. :func:`helpers.core.registry.ensure_twin` saves it with ``save_pretrained``;
:func:`helpers.core.registry.load_pipeline` loads it back with ``from_pretrained``.
Seeds are fixed, so a twin is the same on every machine.
"""
