"""Image to video (notebooks 00, 06, 07): ``python -m helpers animate [IMAGE] [--out OUT.mp4]``.

Three backends:

- ``svd``: Stable Video Diffusion XT 1.1. One image in, ``num_frames`` frames out. Read any image
  safely, fit it to the model's size, run the pipeline (tiny twin offline, real weights in
  colab/full) with the profile's memory options, write an H.264 / yuv420p MP4 atomically.
  Longer videos: :func:`animate_long` chains segments (a frame near the end of one segment is the
  image of the next), pulls each segment's colours back to the keyframe (:func:`match_colors`)
  and crossfades over every join (:func:`crossfade`).
- ``ltx``: LTX-Video through diffusers' ``LTXConditionPipeline``: a text prompt for motion and
  atmosphere plus one or more keyframes placed at chosen frame indices (:func:`animate_ltx`).
  Its size rules (sides multiples of 32, 8k+1 frames) are checked by :func:`ltx_check_size`.
- ``ltx-distilled``: the same with LTX-Video 0.9.8 distilled 2B, the fast choice: 8 steps on the
  schedule it was distilled for and no classifier-free guidance (the profile's ``ltx_distilled`` block).

SVD's speed options (:func:`apply_speed_options`, the ``svd`` block's ``channels_last`` and ``compile``)
are applied when the pipeline loads; attention always runs through torch's scaled_dot_product_attention.

Without an IMAGE argument the command animates the keyframes in ``outputs/keyframes`` (stand-ins
are made when there are none) into ``outputs/videos/animation.mp4``. In ``tiny`` every frame is
labelled with what made it: a random-weight twin, or a small twin the course trained on digits.
"""

from helpers.animate.cli import BACKENDS, MAX_FRAMES, MAX_SIDE, MAX_STEPS, MAX_TOTAL_FRAMES, add_arguments, run
from helpers.animate.ltx import (LTX_BLOCKS, LTX_SPATIAL, LTX_TEMPORAL, animate_ltx, evenly_spaced, load_ltx,
                                 ltx_check_size, ltx_frames, ltx_frames_at_least, ltx_frames_for, ltx_settings,
                                 ltx_timesteps, parse_keyframe, resolve_frame_index)
from helpers.animate.svd import (COMPILE_MODES, SDPA_PROCESSORS, animate_image, animate_keyframes, animate_long,
                                 apply_speed_options, attention_processors, channels_last, check_speed_options,
                                 guidance_ramp, label_frames, load_svd, segments_needed, svd_frames, svd_settings,
                                 use_sdpa)

__all__ = ["BACKENDS", "MAX_FRAMES", "MAX_SIDE", "MAX_STEPS", "MAX_TOTAL_FRAMES", "add_arguments", "run",
           "LTX_BLOCKS", "LTX_SPATIAL", "LTX_TEMPORAL", "animate_ltx", "evenly_spaced", "load_ltx", "ltx_check_size",
           "ltx_frames", "ltx_frames_at_least", "ltx_frames_for", "ltx_settings", "ltx_timesteps", "parse_keyframe",
           "resolve_frame_index", "COMPILE_MODES", "SDPA_PROCESSORS", "animate_image", "animate_keyframes",
           "animate_long", "apply_speed_options", "attention_processors", "channels_last", "check_speed_options",
           "guidance_ramp", "label_frames", "load_svd", "segments_needed", "svd_frames", "svd_settings", "use_sdpa"]
