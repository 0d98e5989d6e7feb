"""Post-production (notebook 08): ``python -m helpers post [VIDEO ...] [--out final.mp4]``.

Four jobs, one module each, every one a few small functions on lists of frames (HxWx3 uint8 arrays):

- :mod:`~helpers.post.interpolation`: in-between frames by optical flow (numpy, written out in notebook
  08), by a plain blend, or by ffmpeg's motion-compensated ``minterpolate``. ``x2`` of ``n`` frames gives
  ``2n - 1`` frames and keeps the originals exactly.
- :mod:`~helpers.post.grading`: 3D LUTs in the ``.cube`` format (read, write, apply with trilinear
  interpolation; the project's own looks are made by :func:`make_lut`), matching a clip's colours to its
  keyframe, and deflicker (a moving average of brightness).
- :mod:`~helpers.post.editing`: trim, concatenate, crossfade, loop, boomerang, title card, caption.
- :mod:`~helpers.post.exporting`: MP4 (H.264 yuv420p faststart), GIF (palettegen + paletteuse), ProRes 422
  HQ (.mov) and WebM (VP9), and a table of size and quality (PSNR against the frames) per file.

:mod:`~helpers.post.frames` reads clips and holds the checks the jobs share; :mod:`~helpers.post.cli` is
the whole chain (:func:`produce`) and the command line. :mod:`~helpers.post.torch_path` runs the optical
flow, the in-betweens and the LUT in torch, batched on a GPU when there is one (the ``device`` setting).
Every public name is importable from here (``from helpers.post import interpolate``).
"""

from helpers.post.cli import (MAX_BYTES, add_arguments, check_memory, check_settings, find_inputs, post_settings,
                              produce, run)
from helpers.post.editing import (add_caption, boomerang, concat, crossfade_clips, duration, fit_clip, loop,
                                  stamp_frames, title_card, trim)
from helpers.post.exporting import (FORMATS, Format, export, format_table, parse_formats, psnr, quality_table,
                                    shrink_to_width)
from helpers.post.frames import (MODEL_FREE_NAMES, STANDIN_NAME, Frames, as_frames, carries_random_weights_stamp, model_stamp,
                                 read_video)
from helpers.post.grading import (LUT_NAMES, SHIPPED_LUT_SIZE, Lut, apply_lut, apply_lut_ffmpeg, brightness,
                                  deflicker, identity_lut, load_lut, lut_grid, lut_path, luts_dir, make_lut,
                                  match_to_keyframe, moving_average, read_cube, s_curve, write_cube,
                                  write_project_luts)
from helpers.post.interpolation import (METHODS, SPEED_METHODS, bilinear_sample, blend_inbetween, box_mean,
                                        change_speed, flow_inbetween, interpolate, interpolate_ffmpeg,
                                        lucas_kanade_step, luma, optical_flow, resample, retime)
from helpers.post.torch_path import DEVICES, describe_device, resolve_device
