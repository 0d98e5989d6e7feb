"""Pixels to Motion: the code the course notebooks share, laid out in course order.

Stages (one module or package per stage, in the order of the notebooks; docs/ARCHITECTURE.md):

- ``pixelcnnpp``  the model, its likelihood, its samplers (01, 03): ``model``, ``likelihood``, ``sampling``, ``fast_sampler``
- ``train`` / ``sample``                 training PixelCNN++ and drawing many images (02-03)
- ``curate`` / ``keyframes``             samples to keyframes (04)
- ``flux``                               Flux.1 keyframe refinement (05)
- ``animate``                            image to video: ``animate.svd`` (06), ``animate.ltx`` (07), ``animate.cli``
- ``post``                               post-production (08): one module per job
- ``slides`` / ``app``                   the two side roads (09-10)
- ``demo``                               every stage in order

Shared machinery lives in ``helpers.core`` and never imports a stage: ``profiles`` (tiny / colab /
full), ``registry`` (model ids and tiny twins), ``hardware`` (GPU class, threads, tolerances),
``device`` (dtype plan, loading, memory options, output checks), ``outputs`` (the work folder, atomic
writes), ``images``, ``drawing``, ``video``, ``blend`` (crossfades, colour transfer), ``data``,
``demo_images``, ``standins``, ``cli`` and ``twins``.
"""

__version__ = "0.1.0"
