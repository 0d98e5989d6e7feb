"""Parameter counts of the full-size architectures, per registry key and component: (total, NF4-quantisable
Linear weights, Linear weights kept unquantised, weights layerwise casting stores in low precision).

Measured on the meta device by :func:`helpers.core.plan.measure_counts` (deterministic; a test rebuilds one and
compares). Regenerate after changing helpers/core/twins/full_size.py:
``python -c "from helpers.core.plan import write_counts; write_counts()"``.
"""

COUNTS = {
    "svd-xt-1-1": {
        "unet": (1524623082, 826040320, 0, 1425056644),
        "vae": (97742847, 2097152, 0, 97682161),
        "image_encoder": (632076800, 630456320, 0, 0),
    },
    "svd-xt": {
        "unet": (1524623082, 826040320, 0, 1425056644),
        "vae": (97742847, 2097152, 0, 97682161),
        "image_encoder": (632076800, 630456320, 0, 0),
    },
    "flux-schnell": {
        "transformer": (11891178560, 11888099328, 0, 8643514368),
        "text_encoder_2": (4762310656, 3623878656, 1006632960, 0),
        "text_encoder": (123060480, 84934656, 0, 0),
        "vae": (83819683, 2097152, 0, 83780003),
    },
    "flux-schnell-img2img": {
        "transformer": (11891178560, 11888099328, 0, 8643514368),
        "text_encoder_2": (4762310656, 3623878656, 1006632960, 0),
        "text_encoder": (123060480, 84934656, 0, 0),
        "vae": (83819683, 2097152, 0, 83780003),
    },
    "flux-dev": {
        "transformer": (11901408320, 11898322944, 0, 8653744128),
        "text_encoder_2": (4762310656, 3623878656, 1006632960, 0),
        "text_encoder": (123060480, 84934656, 0, 0),
        "vae": (83819683, 2097152, 0, 83780003),
    },
    "flux-kontext-dev": {
        "transformer": (11901408320, 11898322944, 0, 8653744128),
        "text_encoder_2": (4762310656, 3623878656, 1006632960, 0),
        "text_encoder": (123060480, 84934656, 0, 0),
        "vae": (83819683, 2097152, 0, 83780003),
    },
    "flux-fill-dev": {
        "transformer": (11902391360, 11899305984, 0, 8654727168),
        "text_encoder_2": (4762310656, 3623878656, 1006632960, 0),
        "text_encoder": (123060480, 84934656, 0, 0),
        "vae": (83819683, 2097152, 0, 83780003),
    },
    "ltx-video": {
        "transformer": (1923385472, 1922039808, 0, 1922281472),
        "text_encoder": (4762310656, 3623878656, 1006632960, 0),
        "vae": (1246913522, 24379392, 0, 1246874865),
    },
    "ltx-video-distilled": {
        "transformer": (1923385472, 1922039808, 0, 1922281472),
        "text_encoder": (4762310656, 3623878656, 1006632960, 0),
        "vae": (1246913522, 24379392, 0, 1246874865),
    },
}
