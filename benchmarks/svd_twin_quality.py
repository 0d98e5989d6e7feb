"""The SVD twin's three quality figures (issue 39), for one or more twin folders side by side.

On held-out keyframes like the course's own (clips.held_out_keyframes: soft grey digits on black, as the
PixelCNN++ makes them, and coloured digits on coloured backgrounds), through the course's own call
(helpers.animate.svd_frames) with the tiny profile's settings (decode_chunk_size 4 included):

* frame 0: PSNR (dB) of the first frame against the conditioning picture (goal >= 20), bucket 127;
* flicker: the largest frame-to-frame swing of mean brightness (goal < 3 %), at bucket 0 (a still scene),
  as a share of the brightness range and of the clip's own mean brightness (the keyframes' mean
  brightness is 17-73 of 255, so the second is 3.5-15 times the first), also with the whole clip decoded at once
  (decode_chunk_size 8);
* motion at motion_bucket_id 10 and 250, and their ratio (goal >= 1.5), measured two ways: how far the
  digit's centre travels over the clip (clips.travel, pixels) and the mean absolute change between
  neighbouring frames (helpers.core.blend.motion_score, 0-1: what notebook 06's bucket sweep plots; a
  flicker counts as motion there).

Compare the twin before and after a retraining (the old one taken out of git):

    mkdir -p /tmp/svd-old && git archive b4d6e9b data/twins/svd-digits | tar -x -C /tmp/svd-old
    .venv/bin/python benchmarks/svd_twin_quality.py old=/tmp/svd-old/data/twins/svd-digits new=data/twins/svd-digits

``random`` as a folder name measures the same architecture with random weights (svd.build_small).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load(folder: str):
    """A twin from its folder (or ``random``: the trained twin's architecture at random weights)."""
    from diffusers import StableVideoDiffusionPipeline

    if folder == "random":
        from helpers.core.twins.svd import build_small

        return build_small(seed=7)
    return StableVideoDiffusionPipeline.from_pretrained(folder, local_files_only=True)


def frames_of(pipe, clip, **overrides) -> np.ndarray:
    """The twin's frames (F, 32, 32, 3) in [0, 1] from the first frame of ``clip``, tiny settings."""
    from helpers.animate import svd_frames, svd_settings
    from helpers.core.profiles import get_profile
    from helpers.core.twins import clips

    settings = svd_settings(get_profile("tiny"), width=clips.SIZE, height=clips.SIZE, **overrides)
    made = svd_frames(pipe, clips.to_image(clip.frames[0]), settings, seed=0)
    return np.stack([np.asarray(f, np.float32) / 255 for f in made])


def figures(pipe) -> dict[str, float]:
    """The figures of one twin, averaged over the held-out keyframes (the swing: its largest)."""
    from helpers.core.blend import motion_score, psnr
    from helpers.core.twins import clips

    keyframes = clips.held_out_keyframes()
    result = {}
    for style in clips.STYLES:
        result[f"frame 0 dB ({style})"] = float(np.mean([psnr(frames_of(pipe, c)[0], (c.frames[0] + 1) / 2, peak=1.0)
                                                          for c in clips.held_out_keyframes(styles=(style,))]))
    for chunk in (4, 8):
        still = [frames_of(pipe, c, motion_bucket_id=0, decode_chunk_size=chunk) for c in keyframes]
        result[f"swing % of range (chunk {chunk})"] = 100 * max(clips.brightness_swing(f) for f in still)
        result[f"swing % of mean (chunk {chunk})"] = 100 * max(clips.brightness_swing(f, of="mean") for f in still)
    slow = [frames_of(pipe, c, motion_bucket_id=clips.SLOW) for c in keyframes]
    fast = [frames_of(pipe, c, motion_bucket_id=clips.FAST) for c in keyframes]
    for name, measure in (("travel px", clips.travel), ("frame change", lambda f: motion_score(list(f)))):
        low, high = np.mean([measure(f) for f in slow]), np.mean([measure(f) for f in fast])
        result[f"{name} @{clips.SLOW}"], result[f"{name} @{clips.FAST}"] = float(low), float(high)
        result[f"{name}: ratio"] = float(high / max(low, 1e-8))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("twins", nargs="+", help="name=folder (folder 'random': random weights)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    rows = {}
    for item in args.twins:
        name, _, folder = item.partition("=")
        pipe = load(folder or name)
        pipe.set_progress_bar_config(disable=True)
        rows[name] = figures(pipe)
        print(name, {key: round(value, 3) for key, value in rows[name].items()}, flush=True)
    names = list(next(iter(rows.values())))
    print("| figure | " + " | ".join(rows) + " |")
    print("|---|" + "---|" * len(rows))
    for key in names:
        print(f"| {key} | " + " | ".join(f"{rows[r][key]:.3g}" for r in rows) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
