"""The lower bounds are the versions the minimum-versions job installs (requirements-min.txt)."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_PINNED = {"torch"}  # installed by the Makefile from TORCH_SPEC (see requirements-min.txt)


def parse(lines, operator):
    found = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            match = re.fullmatch(rf"([A-Za-z0-9_.-]+)\s*{re.escape(operator)}\s*([\d.]+)", line)
            assert match, f"not of the form NAME{operator}VERSION: {line!r}"
            found[match.group(1).lower()] = match.group(2)
    return found


def same_version(a: str, b: str) -> bool:
    """1.26 == 1.26.0"""
    pad = lambda v: [int(x) for x in v.split(".")] + [0] * (4 - len(v.split(".")))  # noqa: E731
    return pad(a) == pad(b)


def test_min_pins_are_exactly_the_lower_bounds():
    lows = parse((ROOT / "requirements.txt").read_text().splitlines(), ">=")
    pins = parse((ROOT / "requirements-min.txt").read_text().splitlines(), "==")
    dev_lows = parse((ROOT / "requirements-dev.txt").read_text().splitlines(), ">=")
    assert set(lows) - NOT_PINNED <= set(pins), f"no pin for {sorted(set(lows) - NOT_PINNED - set(pins))}"
    wrong = {name: (lows[name], pins[name]) for name in set(lows) - NOT_PINNED if not same_version(lows[name], pins[name])}
    assert not wrong, f"requirements.txt lower bound vs requirements-min.txt pin: {wrong}"
    extra = set(pins) - set(lows)
    assert extra <= set(dev_lows), f"pinned but not required: {sorted(extra - set(dev_lows))}"
    assert all(same_version(dev_lows[name], pins[name]) for name in extra)


def test_pyproject_has_the_same_lower_bounds():
    lows = parse((ROOT / "requirements.txt").read_text().splitlines(), ">=")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = parse(project["dependencies"] + project["optional-dependencies"]["app"], ">=")
    assert declared == lows


def test_gpu_wheel_list_has_the_same_lower_bounds():
    """requirements-gpu.txt (what a bare CUDA box lacks) must not drift from the course's bounds."""
    lows = {**parse((ROOT / "requirements.txt").read_text().splitlines(), ">="),
            **parse((ROOT / "requirements-dev.txt").read_text().splitlines(), ">=")}
    gpu = parse((ROOT / "requirements-gpu.txt").read_text().splitlines(), ">=")
    assert not {"torch", "transformers", "accelerate"} & set(gpu)  # the box has them; pulling them is GBs
    assert set(gpu) <= set(lows), f"not a course requirement: {sorted(set(gpu) - set(lows))}"
    wrong = {name: (gpu[name], lows[name]) for name in gpu if not same_version(gpu[name], lows[name])}
    assert not wrong, f"requirements-gpu.txt vs requirements(-dev).txt: {wrong}"
