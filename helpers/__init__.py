"""Pixels to Motion: small helpers shared by the course notebooks.

One module per stage of the course:

- ``profiles``   which world we run in (tiny / colab / full) and every size that follows from it
- ``registry``   the real model ids and their tiny offline twins
- ``outputs``    the work folder and atomic writes
- ``images``     reading any image safely, fitting it to a model, labelling random-weight output
- ``drawing``    text on frames: fonts, word wrap, captions (shared by ``post`` and ``slides``)
- ``video``      writing browser-friendly MP4s, reading them back, showing them inline
- ``pixelcnnpp`` / ``data`` / ``train`` / ``sample``   PixelCNN++ (notebooks 01-03)
- ``curate`` / ``keyframes`` / ``flux``                 samples to keyframes (04-05)
- ``animate``                                           image to video (06-07)
- ``post``                                              post-production (08): a package, one module per job
- ``slides`` / ``app``                                  the two side roads (09-10)
"""

__version__ = "0.1.0"
