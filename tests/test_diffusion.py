"""helpers.diffusion: the toy diffusion stage of notebook 04b (data, denoiser shapes, img2img step count)."""

import torch

from helpers.diffusion import (NULL_LABEL, TinyAutoencoder, TinyDenoiser, img2img_steps, load_digits_vectors,
                               time_embedding)
from helpers.flux import effective_start


def test_digits_are_vectors_in_range():
    x, y = load_digits_vectors()
    assert x.shape == (1797, 64) and y.shape == (1797,)
    assert float(x.min()) == -1.0 and float(x.max()) == 1.0 and set(y.tolist()) == set(range(10))


def test_denoiser_shapes_labels_and_extra_input():
    model = TinyDenoiser(hidden=32, extra_inputs=1)
    x, t = torch.randn(5, 64), torch.rand(5)
    labels = torch.tensor([0, 3, 9, NULL_LABEL, 1])
    out = model(x, t, labels, torch.full((5, 1), 3.0))
    assert out.shape == (5, 64)
    other = model(x, t, labels, torch.full((5, 1), 1.0))
    assert not torch.allclose(out, other), "the extra input (a guidance scale) changes the prediction"
    assert TinyAutoencoder(latent_dims=8).encode(x).shape == (5, 8)


def test_time_embedding_separates_levels():
    e = time_embedding(torch.tensor([0.0, 0.5, 1.0]), 32)
    assert e.shape == (3, 32) and not torch.allclose(e[0], e[1])


def test_img2img_steps_matches_diffusers_rounding_and_effective_start():
    # diffusers' get_timesteps: t_start = int(steps - steps * strength); steps - t_start run.
    assert img2img_steps(0.1, 4) == 1, "strength 0.1 with 4 steps still runs one step"
    assert img2img_steps(0.3, 4) == 2 and img2img_steps(1.0, 4) == 4 and img2img_steps(0.0, 4) == 0
    for steps in (1, 4, 28):
        for strength in (0.01, 0.1, 0.25, 0.5, 0.9, 1.0):
            ran = img2img_steps(strength, steps)
            assert 1 <= ran <= steps
            ladder = torch.linspace(1.0, 1.0 / steps, steps)
            assert abs(float(ladder[steps - ran]) - effective_start(strength, steps)) < 1e-6
