"""Shared test set-up: tiny profile, and outputs/caches kept apart from the user's."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("COURSE_PROFILE", "tiny")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# Tiny twins are rebuildable and shared by all tests of a run (and by CI's notebook run).
os.environ.setdefault("COURSE_CACHE", str(ROOT / ".cache"))


@pytest.fixture
def outputs(tmp_path, monkeypatch):
    """A fresh outputs folder for one test."""
    folder = tmp_path / "outputs"
    monkeypatch.setenv("COURSE_OUTPUTS", str(folder))
    return folder
