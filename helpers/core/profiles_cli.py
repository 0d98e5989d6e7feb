"""``python -m helpers profile``: print the profile that would be used and its settings."""

from __future__ import annotations

import argparse
import json

from helpers.core.profiles import STAGE_SETTINGS, get_profile


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", choices=sorted(STAGE_SETTINGS), help="also print one stage's settings")


def run(args: argparse.Namespace) -> int:
    profile = get_profile(args.profile)
    print(profile.banner())
    if args.stage:
        print(json.dumps(profile.settings(args.stage), indent=2, default=str))
    return 0
