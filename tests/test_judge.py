"""The digit judge: real held-out digits pass, noise and blank squares do not, any size is read as 8x8."""

import torch

from helpers.core.judge import digits_with_labels, judge, recognised_fraction
from helpers.core.data import resize_square


def test_real_held_out_digits_are_recognised_as_themselves():
    digits = digits_with_labels(seed=0)
    test, labels = digits["test"], digits["test_labels"]
    seen, confidence = judge(test)
    right = ((seen == labels.numpy()) & (confidence >= 0.8)).mean()
    assert right >= 0.88, right
    assert recognised_fraction(test) >= 0.88
    threes = test[labels == 3]
    assert recognised_fraction(threes, label=3) >= 0.8
    assert recognised_fraction(threes, label=5) <= 0.1


def test_noise_and_blank_squares_are_not_digits():
    noise = torch.randint(0, 256, (200, 1, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    assert recognised_fraction(noise) <= 0.1
    assert recognised_fraction(torch.zeros(16, 1, 8, 8, dtype=torch.uint8)) == 0.0
    assert recognised_fraction(torch.full((16, 1, 8, 8), 255, dtype=torch.uint8)) == 0.0


def test_other_sizes_and_model_range_are_read_as_8x8():
    test = digits_with_labels(seed=0)["test"]
    bigger = resize_square(test, 16)  # the upsampled digits the 16x16 runs train on
    assert recognised_fraction(bigger) >= 0.8
    in_model_range = test.float() / 127.5 - 1.0
    assert abs(recognised_fraction(in_model_range) - recognised_fraction(test)) < 1e-9
