"""`make demo` runs helpers.demo.CHAIN: every link must be a real stage that accepts its arguments."""

import importlib

import pytest

from helpers.core.cli import STAGES, stage_parser
from helpers.demo import CHAIN


def test_chain_follows_the_course_and_ends_in_post_production():
    stages = [stage for stage, _, _ in CHAIN]
    assert stages[:2] == ["train", "sample"], "the chain starts by training PixelCNN++, then sampling"
    assert stages.index("animate") < stages.index("post"), "post-production comes after animation"
    assert "post" in stages, "post writes outputs/final/final.mp4"


@pytest.mark.parametrize("stage, extra", [(s, e) for s, e, _ in CHAIN], ids=[s for s, _, _ in CHAIN])
def test_every_link_is_a_stage_that_takes_its_arguments(stage, extra):
    assert stage in STAGES
    module = importlib.import_module(STAGES[stage][0])
    assert callable(module.run)
    args = stage_parser(stage, module).parse_args(["--profile", "tiny", *extra])
    assert args.profile == "tiny"


def test_demo_can_start_later_and_rejects_unknown_stages(capsys):
    from helpers.core.cli import main

    assert main(["demo", "--from", "nowhere"]) == 2
    assert "invalid choice" in capsys.readouterr().err
