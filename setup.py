"""Packaging detail pyproject.toml cannot say: the repository's data/ folder ships inside the package.

data/ (demo images, LUTs, the example storyboard, the twins the course trained) sits at the repository root, where learners and
tests read it; in a wheel or a pip install from git it becomes ``helpers/data`` (package data), found by
:func:`helpers.core.demo_images.data_dir`. Everything else is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=find_namespace_packages(include=["helpers", "helpers.*"], exclude=["*__pycache__*"]) + ["helpers.data", "helpers.data.luts"],
    package_dir={"helpers.data": "data", "helpers.data.luts": "data/luts"},
    package_data={"helpers.data": ["*.png", "*.json", "*.md",  # + the twins the course trained (save_pretrained folders)
                                   "twins/*/*.json", "twins/*/*.png", "twins/*/*/*.json", "twins/*/*/*.safetensors",
                                   # the PixelCNN++ the course trained (weights, meta, record, loss curve)
                                   "checkpoints/*/*.json", "checkpoints/*/*.png", "checkpoints/*/*.safetensors"],
                  "helpers.data.luts": ["*.cube"],
                  "helpers.pixelcnnpp": ["*.c"]},  # the fast sampler's fused tails, compiled on first use
)
