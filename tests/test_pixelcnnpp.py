"""PixelCNN++: causality, the likelihood, and both samplers (float64, CPU, tiny configs; float32 where the
fast sampler's C kernels are compared with PyTorch's operations)."""

import math

import pytest
import torch

from helpers.pixelcnnpp.fast_plan import tap_runs
from helpers.pixelcnnpp import (FastSampler, PixelCNNpp, bits_per_dim, discretized_logistic_log_prob,
                                discretized_mix_logistic_log_prob, discretized_mix_logistic_nll, pixel_pmf,
                                sample, sample_pixel, to_grid)

LEVELS = torch.arange(256, dtype=torch.float64) / 127.5 - 1.0


def tiny_model(channels=1, nr_resnet=1, filters=6, mix=3, seed=0, sharpen=True, num_classes=None):
    """A tiny float64 model; ``sharpen`` gives its output moderate scales (log-scale ~ -2.5) so the
    pixel distributions spread over tens of levels instead of piling up in the edge bins. With
    ``num_classes``, class-conditional, its class biases made large enough to change what it draws."""
    torch.manual_seed(seed)
    model = PixelCNNpp(channels, nr_resnet, filters, mix, dropout=0.0, num_classes=num_classes).double().eval()
    if num_classes:
        with torch.no_grad():
            for block in model.modules():
                if getattr(block, "class_bias", None) is not None:
                    block.class_bias.mul_(40.0)
    if sharpen:
        with torch.no_grad():
            model.nin_out.weight.mul_(0.3)
            per = 2 * mix if channels == 1 else 3 * mix
            for c in range(channels):
                start = mix + c * per + mix
                model.nin_out.bias[start:start + mix] = -2.5
    return model


def random_images(n, shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return to_grid(torch.rand(n, *shape, generator=g, dtype=torch.float64) * 2 - 1)


# ---------------------------------------------------------------- the network

@pytest.mark.parametrize("channels,mix,expected", [(1, 4, 12), (3, 4, 40), (3, 10, 100)])
def test_output_shape(channels, mix, expected):
    model = PixelCNNpp(channels, 1, 4, mix, dropout=0.0)
    out = model(torch.zeros(2, channels, 8, 12))
    assert out.shape == (2, expected, 8, 12)


def test_bad_shapes_are_clear_errors():
    model = PixelCNNpp(1, 1, 4, 2)
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.zeros(1, 1, 10, 8))
    with pytest.raises(ValueError, match="channel"):
        model(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError):
        PixelCNNpp(in_channels=2)


def jacobian_mask(model, shape):
    """mask[i, j] = which input pixels (H, W) change any output parameter at (i, j)."""
    c, h, w = shape
    x = random_images(1, shape).requires_grad_()
    out = model(x)
    mask = torch.zeros(h, w, h, w, dtype=torch.bool)
    for i in range(h):
        for j in range(w):
            (grad,) = torch.autograd.grad(out[0, :, i, j].sum(), x, retain_graph=True)
            mask[i, j] = grad[0].abs().sum(0) > 0
    return mask


@pytest.mark.parametrize("channels", [1, 3])
def test_causal_and_no_blind_spot(channels):
    h, w = 8, 8
    mask = jacobian_mask(tiny_model(channels, sharpen=False), (channels, h, w))
    flat = mask.reshape(h * w, h * w)
    # output at raster position t never sees inputs t, t+1, ... (any channel)
    assert not torch.triu(flat).any()
    # ... but it does see pixels above and to the right: no blind spot
    i, j = 4, 4
    seen = mask[i, j]
    assert seen[i - 1, j + 1:].all() and seen[i - 2, j + 2:].all()
    assert seen[:i].all() and seen[i, :j].all()  # in this model every earlier pixel is seen
    assert mask[1, 0, 0, :3].all()               # first pixel of a row sees the row above


def test_non_square_causality():
    mask = jacobian_mask(tiny_model(1, sharpen=False), (1, 4, 12))
    assert not torch.triu(mask.reshape(48, 48)).any()
    assert mask[2, 5, 1, 6:9].all()


def test_dropout_is_active_only_in_training():
    model = PixelCNNpp(1, 1, 8, 2, dropout=0.5).double()
    x = random_images(2, (1, 8, 8))
    model.train()
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    b = model(x)
    assert not torch.allclose(a, b)
    model.eval()
    assert torch.equal(model(x), model(x))


# ---------------------------------------------------------------- the likelihood

def reference_log_prob(x, params, channels):
    """Straightforward (not stable) evaluation of the openai layout, one pixel at a time."""
    b, p, h, w = params.shape
    m = p // (3 if channels == 1 else 10)
    out = torch.zeros(b, h, w, dtype=torch.float64)
    for n in range(b):
        for i in range(h):
            for j in range(w):
                q = params[n, :, i, j]
                v = x[n, :, i, j]
                logits = q[:m]
                total = 0.0
                for k in range(m):
                    prob = torch.softmax(logits, 0)[k]
                    for c in range(channels):
                        base = m + c * (2 * m if channels == 1 else 3 * m)
                        mean, log_s = q[base + k], max(q[base + m + k], torch.tensor(-7.0))
                        if channels == 3 and c == 1:
                            mean = mean + torch.tanh(q[m + 2 * m + k]) * v[0]
                        if channels == 3 and c == 2:
                            mean = mean + torch.tanh(q[m + 3 * m + 2 * m + k]) * v[0] \
                                + torch.tanh(q[m + 6 * m + 2 * m + k]) * v[1]
                        s = torch.exp(log_s)
                        hi = 1.0 if v[c] > 0.999 else torch.sigmoid((v[c] + 1 / 255 - mean) / s)
                        lo = 0.0 if v[c] < -0.999 else torch.sigmoid((v[c] - 1 / 255 - mean) / s)
                        bin_prob = hi - lo
                        if v[c] > 0.999:  # 1 - sigmoid(z) written as sigmoid(-z), to keep it from rounding to 0
                            bin_prob = torch.sigmoid(-(v[c] - 1 / 255 - mean) / s)
                        if bin_prob < 1e-5 and -0.999 < v[c] < 0.999:  # documented: density at the bin centre times its width
                            z = (v[c] - mean) / s
                            bin_prob = torch.sigmoid(z) * torch.sigmoid(-z) / s * (2 / 255)
                        prob = prob * bin_prob
                    total = total + prob
                out[n, i, j] = torch.log(total)
    return out


@pytest.mark.parametrize("channels", [1, 3])
def test_log_prob_matches_a_plain_reference_of_the_openai_layout(channels):
    m = 3
    p = 3 * m if channels == 1 else 10 * m
    g = torch.Generator().manual_seed(3)
    params = torch.randn(2, p, 2, 3, generator=g, dtype=torch.float64)
    rest = params[:, m:].reshape(2, channels, -1, 2, 3)
    rest[:, :, m:2 * m] = rest[:, :, m:2 * m] * 0.3 - 2.5  # moderate scales: no tiny-bin fallback
    params[:, m:] = rest.reshape(2, -1, 2, 3)
    x = random_images(2, (channels, 2, 3), seed=4)
    x[0, :, 0, 0] = -1.0
    x[1, :, 1, 2] = 1.0  # edge bins
    expected = reference_log_prob(x, params, channels)
    got = discretized_mix_logistic_log_prob(x, params)
    assert torch.allclose(got, expected, atol=1e-10)
    nll = discretized_mix_logistic_nll(x, params)
    assert nll.shape == (2,) and torch.allclose(nll, -expected.flatten(1).sum(1))


def test_grey_probabilities_sum_to_one_including_edge_bins():
    means = torch.tensor([-1.3, -0.99, 0.0, 0.4, 1.0, 2.0], dtype=torch.float64).view(-1, 1)
    log_scales = torch.tensor([-4.0, -2.0, -1.0, -3.0, -2.0, 0.5], dtype=torch.float64).view(-1, 1)
    probs = discretized_logistic_log_prob(LEVELS.view(1, -1), means, log_scales).exp()
    assert torch.allclose(probs.sum(1), torch.ones(6, dtype=torch.float64), atol=1e-6)
    assert probs[0, 0] > 0.5 and probs[5, 255] > 0.5  # a mean beyond the range piles into the edge bin


def test_rgb_joint_sums_to_one_over_all_256_cubed_colours():
    """Sum of the joint P(R, G, B) over all 256*256 (G, B) for a few R values equals R's
    marginal P(R), and those marginals sum to one over R: so the joint sums to one over 256^3."""
    m = 3
    g = torch.Generator().manual_seed(5)
    params = torch.randn(1, 10 * m, 1, 1, generator=g, dtype=torch.float64)
    marginal_r = pixel_pmf(params[:, :, 0, 0], 3)[0, 0]  # R has nothing before it
    assert abs(marginal_r.sum().item() - 1.0) < 1e-6
    gb = torch.stack(torch.meshgrid(LEVELS, LEVELS, indexing="ij"), 0).reshape(2, -1)  # (2, 65536)
    for r_level in (0, 77, 128, 255):
        x = torch.cat([torch.full((1, gb.shape[1]), LEVELS[r_level].item(), dtype=torch.float64), gb], 0)
        x = x.T.reshape(-1, 3, 1, 1)
        joint = discretized_mix_logistic_log_prob(x, params.expand(x.shape[0], -1, -1, -1)).exp().sum()
        assert abs(joint.item() - marginal_r[r_level].item()) < 1e-6 * max(1.0, marginal_r[r_level].item() * 1e3)


def test_channel_conditionals_couple_only_through_the_coefficients():
    m = 1
    params = torch.zeros(1, 10 * m, dtype=torch.float64)
    # means (R, G, B) = (0.1, -0.2, 0.3); log-scales -2; coefficients: R->G 0.5, R->B -0.4, G->B 0.3
    for c, (mean, coeff) in enumerate([(0.1, 0.5), (-0.2, -0.4), (0.3, 0.3)]):
        base = m + 3 * m * c
        params[0, base], params[0, base + 1], params[0, base + 2] = mean, -2.0, math.atanh(coeff)
    pmf = lambda prev: pixel_pmf(params, 3, torch.tensor([prev], dtype=torch.float64))[0]  # noqa: E731
    base = pmf([0.0, 0.0, 0.0])
    assert torch.allclose(base.sum(-1), torch.ones(3, dtype=torch.float64), atol=1e-8)
    # R never depends on the pixel's own colours
    assert torch.allclose(pmf([0.8, -0.6, 0.4])[0], base[0])
    # G depends on R (and nothing else) exactly through mean_G + 0.5 * R
    r = 0.4
    moved = pmf([r, 0.9, -0.9])
    assert torch.allclose(moved[1], pmf([r, 0.0, 0.0])[1])
    single = discretized_logistic_log_prob(LEVELS, torch.tensor(-0.2 + 0.5 * r), torch.tensor(-2.0)).exp()
    assert torch.allclose(moved[1], single, atol=1e-12)
    # B depends on R and G through mean_B - 0.4 * R + 0.3 * G
    r, gval = -0.3, 0.6
    single_b = discretized_logistic_log_prob(LEVELS, torch.tensor(0.3 - 0.4 * r + 0.3 * gval), torch.tensor(-2.0)).exp()
    assert torch.allclose(pmf([r, gval, 0.0])[2], single_b, atol=1e-12)
    assert not torch.allclose(pmf([r, -gval, 0.0])[2], single_b, atol=1e-3)


@pytest.mark.parametrize("channels", [1, 3])
def test_finite_values_and_gradients_at_extreme_parameters(channels):
    m = 2
    p = 3 * m if channels == 1 else 10 * m
    params = torch.zeros(4, p, 2, 2, dtype=torch.float64)
    params[0] = 1e4     # huge logits, means, log-scales and coefficients
    params[1] = -1e4    # tiny log-scales (floored at -7), means far below -1
    params[2, m:] = 30.0
    params[3, :m] = torch.tensor([500.0, -500.0]).view(-1, 1, 1)
    params[3, m:] = -30.0
    params.requires_grad_()
    x = torch.tensor([-1.0, 1.0, 0.0, 1 / 127.5 - 1.0], dtype=torch.float64).view(4, 1, 1, 1).expand(4, channels, 2, 2)
    for dtype in (torch.float64, torch.float32):
        nll = discretized_mix_logistic_nll(x.to(dtype), params.to(dtype))
        assert torch.isfinite(nll).all()
        (grad,) = torch.autograd.grad(nll.sum(), params)
        assert torch.isfinite(grad).all()


def test_bits_per_dim():
    nll = torch.tensor([8 * math.log(2) * 3 * 4 * 4])
    assert torch.allclose(bits_per_dim(nll, (3, 4, 4)), torch.tensor([8.0]))
    assert torch.allclose(bits_per_dim(nll, (7, 3, 4, 4)), torch.tensor([8.0]))
    # a sharp logistic centred on -1 puts almost all mass in bin 0: an all-black image costs ~0 bits
    black = -torch.ones(1, 1, 4, 4, dtype=torch.float64)
    params = torch.zeros(1, 3, 4, 4, dtype=torch.float64)
    params[:, 1], params[:, 2] = -1.0, -7.0
    bpd = bits_per_dim(discretized_mix_logistic_nll(black, params), black.shape)
    assert 0 < bpd.item() < 0.05


# ---------------------------------------------------------------- sampling

@pytest.mark.parametrize("channels,h,w,nr_resnet", [(1, 8, 8, 1), (3, 8, 12, 2), (3, 12, 8, 1), (1, 4, 16, 2)])
def test_fast_equals_naive(channels, h, w, nr_resnet):
    model = tiny_model(channels, nr_resnet, filters=5, mix=2, seed=nr_resnet)
    x = random_images(2, (channels, h, w))
    assert torch.allclose(FastSampler(model, (channels, h, w)).forward_all(x), model(x), atol=1e-12)
    naive = sample(model, 3, (channels, h, w), generator=torch.Generator().manual_seed(7), method="naive")
    fast = sample(model, 3, (channels, h, w), generator=torch.Generator().manual_seed(7), method="fast")
    assert fast.shape == (3, channels, h, w)
    assert torch.equal(fast, naive)
    assert torch.equal(to_grid(fast), fast) and fast.min() >= -1 and fast.max() <= 1
    assert not fast.is_inference() and fast.is_contiguous()  # the CPU steps run in inference mode; the images do not


@pytest.mark.parametrize("channels,h,w,nr_resnet", [(1, 8, 8, 1), (3, 8, 12, 2)])
def test_class_conditional_fast_equals_naive_for_every_path(channels, h, w, nr_resnet):
    """With labels, in float64: the plan equals model(x, labels); the listed steps, the table steps (what CUDA
    graphs capture) and the naive sampler draw the same images; the kept caches serve other labels; the
    labels change the images."""
    model = tiny_model(channels, nr_resnet, filters=5, mix=2, seed=nr_resnet, num_classes=4)
    x, labels = random_images(3, (channels, h, w)), torch.tensor([0, 3, 1])
    sampler = FastSampler(model, (channels, h, w))
    assert torch.allclose(sampler.forward_all(x, labels), model(x, labels), atol=1e-12)
    assert not torch.allclose(model(x, labels), model(x, torch.tensor([2, 2, 2])), atol=1e-3)
    gen = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    for asked in (labels, torch.tensor([2, 2, 0]), 3):
        naive = sample(model, 3, (channels, h, w), generator=gen(), method="naive", labels=asked)
        assert torch.equal(sample(model, 3, (channels, h, w), generator=gen(), labels=asked), naive)
        from helpers.pixelcnnpp.sampling import _draw_uniforms, sample_labels
        u = _draw_uniforms(3, (channels, h, w), 2, gen(), torch.device("cpu"), torch.float64)
        assert torch.equal(sampler.run(3, *u, steps="table", labels=sample_labels(model, 3, asked)), naive)
    other = sample(model, 3, (channels, h, w), generator=gen(), labels=torch.tensor([2, 2, 0]))
    assert (other != sample(model, 3, (channels, h, w), generator=gen(), labels=labels)).any()
    # no labels: the classes in turn, 0, 1, 2, 0, ...
    assert torch.equal(sample(model, 3, (channels, h, w), generator=gen()),
                       sample(model, 3, (channels, h, w), generator=gen(), labels=[0, 1, 2]))


def test_class_conditional_sampling_with_c_kernels_in_float32():
    from helpers.pixelcnnpp import fused

    if fused.kernels() is None:
        pytest.skip("no C compiler here: the sampler uses PyTorch's operations")
    model = tiny_model(1, 2, filters=5, mix=2, seed=4, num_classes=3).float()
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    for labels in ([0, 1, 2, 2], [2, 2, 1, 0]):
        fast = sample(model, 4, (1, 8, 8), generator=gen(), labels=labels)
        assert torch.equal(fast, sample(model, 4, (1, 8, 8), generator=gen(), method="naive", labels=labels))
    assert FastSampler.for_model(model, (1, 8, 8)).kept[2] is not None  # the C path was taken


def test_labels_are_checked_against_the_model():
    conditional, plain = tiny_model(1, 1, num_classes=3), tiny_model(1, 1)
    x = random_images(2, (1, 4, 4))
    with pytest.raises(ValueError, match="class-conditional"):
        conditional(x)
    with pytest.raises(ValueError, match="unconditional"):
        plain(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="0..2"):
        sample(conditional, 2, (1, 4, 4), labels=3)
    with pytest.raises(ValueError, match="unconditional"):
        sample(plain, 2, (1, 4, 4), labels=1)
    with pytest.raises(ValueError, match="one per image"):
        sample(conditional, 2, (1, 4, 4), labels=[0, 1, 2])
    assert plain.num_classes is None and not any("class_bias" in k for k in plain.state_dict())


def test_table_steps_draw_what_listed_steps_draw():
    """The step functions CUDA graphs capture (positions read from a table) run eagerly on the CPU and
    draw the images the CPU's listed steps (Python-int positions) draw, in float64."""
    model = tiny_model(3, 1, filters=5, mix=2)
    g = torch.Generator().manual_seed(5)
    u_mix = torch.rand(8, 8, 2, 2, generator=g, dtype=torch.float64)
    u_log = torch.rand(8, 8, 2, 3, generator=g, dtype=torch.float64)
    sampler = FastSampler(model, (3, 8, 8))
    listed = sampler.run(2, u_mix, u_log, steps="listed")
    table = sampler.run(2, u_mix, u_log, steps="table")
    assert torch.equal(listed, table)
    assert torch.equal(listed, sample(model, 2, (3, 8, 8), generator=torch.Generator().manual_seed(5), method="naive"))
    with pytest.raises(ValueError, match="steps must be"):
        sampler.run(2, u_mix, u_log, steps="graph")


def test_table_steps_are_kept_across_runs_and_draw_each_runs_own_noise():
    """The steps CUDA graphs capture are kept with the caches (no capture per run): a second run reuses the same
    step functions on new noise and still draws what the listed steps draw for it (float64, CPU); another
    temperature records again."""
    model = tiny_model(3, 1, filters=5, mix=2)
    sampler = FastSampler(model, (3, 8, 8))
    draws = []
    for seed in (5, 6):
        g = torch.Generator().manual_seed(seed)
        u_mix = torch.rand(8, 8, 2, 2, generator=g, dtype=torch.float64)
        u_log = torch.rand(8, 8, 2, 3, generator=g, dtype=torch.float64)
        table = sampler.run(2, u_mix, u_log, steps="table")
        assert sampler.kept is not None and sampler.kept[0][0] == "table", "the table steps were not kept"
        draws.append(sampler.kept[1][1])
        assert torch.equal(table, FastSampler(model, (3, 8, 8)).run(2, u_mix, u_log, steps="listed"))
    assert draws[0] is draws[1]  # the same step functions (on a GPU: the same captured graphs), not re-recorded
    sampler.run(2, u_mix, u_log, temperature=0.5, steps="table")
    assert sampler.kept[1][1] is not draws[0]


def test_tap_runs_are_views_of_neighbouring_rows_without_padding():
    assert tap_runs([99, 40, 41, 57], pad=99) == ((1, 40, 2), (3, 57, 1))
    assert tap_runs([3, 4, 5, 6], pad=99) == ((0, 3, 4),)
    assert tap_runs([99, 99], pad=99) == ()
    assert tap_runs([5, 4], pad=99) == ((0, 5, 1), (1, 4, 1))  # rows out of order: two runs


def test_recorded_steps_fill_the_caches_as_compute_does():
    """Every cached value after the listed steps (one-position jobs replayed as recorded views and out=
    products) equals the whole plan at once on the drawn images (forward_all), in float64. Positions in
    column 0 (the padding tap left out) and the first row (padding only) are included; what only the
    last pixel would complete is never computed, and not compared."""
    model = tiny_model(3, 2, filters=5, mix=2, seed=3)
    sampler = FastSampler(model, (3, 8, 8))
    recorded = sum(runs is not None for step in sampler.runs for runs in step)
    assert recorded > 8 * 8 * 8                           # most per-pixel jobs take the recorded path
    g = torch.Generator().manual_seed(2)
    u_mix = torch.rand(8, 8, 2, 2, generator=g, dtype=torch.float64)
    u_log = torch.rand(8, 8, 2, 3, generator=g, dtype=torch.float64)
    from helpers.pixelcnnpp import fast_sampler as fs
    images = sampler.run(2, u_mix, u_log)
    # the run's steps again, by hand, so that the caches can be read before they are freed
    gumbel = fs.gumbel_noise(u_mix).reshape(64, 2, -1)
    logistic = fs.logistic_noise(u_log).reshape(64, 2, -1)
    with torch.no_grad():
        sampler.allocate(2, torch.device("cpu"), torch.float64)
        steps = fs.listed_steps(sampler, fs.record_jobs(sampler, 2), gumbel, logistic, 1.0)
        sampler.fill_constants(2)
        for step in steps:
            step()
        keep = {node.name: (node.raw.clone() if node.raw is not None else None) for node in sampler.nodes}
        assert torch.equal(sampler.input.raw[:, :-1, :3].reshape(2, 8, 8, 3).permute(0, 3, 1, 2), images)
        sampler.forward_all(images)
        for node in sampler.nodes[1:]:
            done = node.sched < 8 * 8 - 1                               # what the last pixel completes is never needed
            if keep[node.name] is not None:
                assert torch.allclose(keep[node.name][:, :-1][:, done], node.raw[:, :-1][:, done], atol=1e-12), node.name


def test_the_plan_is_built_once_per_model_and_rebuilt_when_weights_change():
    import gc
    import weakref

    from helpers.pixelcnnpp import fast_sampler as fs

    model = tiny_model(1, 1)
    first = fs.FastSampler.for_model(model, (1, 8, 8))
    assert fs.FastSampler.for_model(model, (1, 8, 8)) is first
    assert fs.FastSampler.for_model(model, (1, 4, 8)) is not first      # another size: another plan
    again = fs.FastSampler.for_model(model, (1, 8, 8))
    with torch.no_grad():
        model.nin_out.weight.mul_(2.0)                                  # an in-place change (an optimizer step)
    changed = fs.FastSampler.for_model(model, (1, 8, 8))
    assert changed is not again
    x = random_images(2, (1, 8, 8))
    assert torch.allclose(changed.forward_all(x), model(x), atol=1e-12)  # the new weights are used
    alive = weakref.ref(model)
    del model, first, again, changed
    gc.collect()
    assert alive() is None                                              # the cache does not keep a model alive


def _ulps(a: torch.Tensor, b: torch.Tensor) -> int:
    """The largest distance between two float32 tensors in units in the last place (same-sign values)."""
    bits = lambda t: (t + 0.0).contiguous().view(torch.int32).long()  # noqa: E731  (+ 0.0: -0 and 0 alike)
    return int((bits(a) - bits(b)).abs().max())


def test_fused_kernels_compute_what_pytorch_computes():
    """The C loops (gate, concat_elu, the copy into raw) against PyTorch's operations in float32: within a few
    units in the last place, on strided rows of a cache, with x stored in its own concat_elu row, NaN kept."""
    import torch.nn.functional as F

    from helpers.pixelcnnpp import fused

    tails = fused.kernels()
    if tails is None:
        pytest.skip("no C compiler here: the sampler uses PyTorch's operations")
    g = torch.Generator().manual_seed(0)
    cache = lambda c: torch.randn(4, 9, c, generator=g) * 3  # noqa: E731  (B, positions + 1, C)
    ab, res, raw, ce = cache(12), cache(6), torch.zeros(4, 9, 6), torch.zeros(4, 9, 12)
    tails.gate(ab[:, 2:5], res[:, 2:5], raw[:, 2:5], ce[:, 2:5])()           # a run of three positions
    x = res[:, 2:5] + F.glu(ab[:, 2:5], -1)
    assert _ulps(raw[:, 2:5], x) <= 2 and _ulps(ce[:, 2:5], F.elu(torch.cat([x, -x], -1))) <= 4
    assert not raw[:, :2].any() and not ce[:, 5:].any()                     # nothing outside the rows
    ce[:, 7, :6] = res[:, 7]
    tails.store(ce[:, 7, :6], None, ce[:, 7])()                             # x already in the first half
    assert _ulps(ce[:, 7], F.elu(torch.cat([res[:, 7], -res[:, 7]], -1))) <= 2
    wide = torch.linspace(-100, 100, 400_001).view(1, -1, 1)                 # elu far out and near 0
    both = torch.empty(1, wide.shape[1], 2)
    tails.store(wide, None, both)()
    assert _ulps(both[..., 0], F.elu(wide[..., 0])) <= 2 and _ulps(both[..., 1], F.elu(-wide[..., 0])) <= 2
    special = torch.tensor([[float("nan"), float("inf"), -float("inf"), 0.0]])
    out = torch.empty(1, 8)
    tails.store(special, None, out)()
    assert out[0, 0].isnan() and out[0, 4].isnan() and out[0, 1:4].tolist() == [float("inf"), -1.0, 0.0]
    assert not tails.fits(res.double()) and tails.fits(res[:, 3])


@pytest.mark.parametrize("channels,temperature", [(3, 1.0), (3, 0.8), (1, 1.3)])
def test_fast_sampler_with_c_kernels_draws_what_pytorch_draws_in_float32(channels, temperature):
    """float32 on the CPU, where the fast sampler records the tails and the pixel draw as C calls: the images
    it draws with PyTorch's operations only, and the naive sampler's."""
    from helpers.pixelcnnpp import fused

    if fused.kernels() is None:
        pytest.skip("no C compiler here: the sampler uses PyTorch's operations")
    model = tiny_model(channels, 2, filters=5, mix=2, seed=4).float()
    shape = (channels, 8, 8)
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    with_c, plain = FastSampler(model, shape), FastSampler(model, shape)
    plain.fused_kernels = False
    from helpers.pixelcnnpp.sampling import _draw_uniforms
    u = _draw_uniforms(4, shape, 2, gen(), torch.device("cpu"), torch.float32)
    images = with_c.run(4, *u, temperature=temperature)
    assert torch.equal(images, plain.run(4, *u, temperature=temperature))
    assert with_c.kept[0][-1] and with_c.kept[2] is not None          # the C path was taken
    assert not plain.kept[0][-1] and plain.kept[2] is None
    assert torch.equal(images, sample(model, 4, shape, temperature, generator=gen(), method="naive"))
    assert torch.equal(with_c.run(4, *u, temperature=temperature), images)  # again, on the kept caches and calls


def test_without_a_c_compiler_the_sampler_uses_pytorch(monkeypatch, tmp_path):
    from helpers.pixelcnnpp import fused

    model = tiny_model(3, 1, filters=5, mix=2).float()
    images = sample(model, 2, (3, 8, 8), generator=torch.Generator().manual_seed(1), method="naive")
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    fused.kernels.cache_clear()
    try:
        assert fused.kernels() is None
        sampler = FastSampler(model, (3, 8, 8))
        from helpers.pixelcnnpp.sampling import _draw_uniforms
        u = _draw_uniforms(2, (3, 8, 8), 2, torch.Generator().manual_seed(1), torch.device("cpu"), torch.float32)
        assert torch.equal(sampler.run(2, *u), images)
        assert not sampler.kept[0][-1] and sampler.kept[2] is None
    finally:
        fused.kernels.cache_clear()


def test_small_caches_and_their_recorded_steps_are_kept_for_the_next_draw(monkeypatch):
    """A second draw of the same batch size reuses the caches and recorded steps and draws the same
    images; another batch size, forward_all, or caches over KEEP_BYTES start afresh (and are let go)."""
    model = tiny_model(3, 1, filters=5, mix=2)
    sampler = FastSampler(model, (3, 8, 8))
    g = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    u = lambda n: (torch.rand(8, 8, n, 2, generator=g(), dtype=torch.float64),  # noqa: E731
                   torch.rand(8, 8, n, 3, generator=g(), dtype=torch.float64))
    first = sampler.run(2, *u(2))
    kept = sampler.kept
    assert kept is not None and sampler.input.raw is not None
    assert torch.equal(sampler.run(2, *u(2)), first) and sampler.kept is kept          # reused
    other = sampler.run(3, *u(3))
    assert sampler.kept is not kept and sampler.kept[0][0] == 3
    assert torch.equal(other, FastSampler(model, (3, 8, 8)).run(3, *u(3)))             # as a fresh sampler draws
    sampler.forward_all(random_images(1, (3, 8, 8)))
    assert sampler.kept is None                                                        # its caches replaced them
    assert torch.equal(sampler.run(2, *u(2)), first)
    monkeypatch.setattr(FastSampler, "KEEP_BYTES", 0)
    assert torch.equal(sampler.run(2, *u(2)), first)
    assert sampler.kept is None and sampler.input.raw is None                          # too big to keep: freed


def test_step_classes_cover_every_step_with_fixed_shapes():
    """The steps fall into a few classes of equal shape (what one CUDA graph per class needs), and each
    class table row holds exactly that step's pixel index, positions and gather indices."""
    sampler = FastSampler(tiny_model(3, 2), (3, 16, 16))
    step_class, layouts, tables = sampler.step_classes()
    assert len(step_class) == 16 * 16
    assert len(layouts) < 16 * 16 // 4                    # far fewer shapes than steps
    seen = [0] * len(layouts)
    for t, k in enumerate(step_class):
        row = tables[k][seen[k]]
        seen[k] += 1
        assert int(row[0]) == t                           # rows are in drawing order within a class
        jobs = sampler.schedule[t + 1] if t + 1 < 16 * 16 else []
        expected = torch.cat([torch.tensor([t])] + [x for _, pos, flats in jobs for x in (pos, *flats)])
        assert torch.equal(row, expected)
        assert [(node.name, n) for node, n in layouts[k]] == [(node.name, len(pos)) for node, pos, _ in jobs]
    assert seen == [len(table) for table in tables]


def test_cuda_graphs_need_cuda():
    with pytest.raises(ValueError, match="cuda_graphs=True needs CUDA"):
        sample(tiny_model(1, 1), 1, (1, 4, 4), generator=torch.Generator().manual_seed(0), cuda_graphs=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graphs_draw_what_naive_draws_in_float64():
    from helpers.core.hardware import exact_float64

    with exact_float64():
        model = tiny_model(3, 1, filters=5, mix=2).cuda()
        kwargs = dict(n=3, image_shape=(3, 8, 8))
        gen = lambda: torch.Generator(device="cuda").manual_seed(3)  # noqa: E731
        graphed = sample(model, generator=gen(), method="fast", cuda_graphs=True, **kwargs)
        eager = sample(model, generator=gen(), method="fast", cuda_graphs=False, **kwargs)
        naive = sample(model, generator=gen(), method="naive", **kwargs)
    # float64 with TF32 off: a flip at a bin edge is practically impossible, but two CUDA calls are not
    # promised bitwise equal without deterministic algorithms; a broken replay differs almost everywhere.
    for other in (eager, naive):
        assert (graphed == other).double().mean().item() > 0.99


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_failed_capture_warns_and_samples_without_graphs(monkeypatch):
    import helpers.pixelcnnpp.fast_sampler as fast

    def refuse(steps, counters):
        raise RuntimeError("capture refused by this test")

    monkeypatch.setattr(fast, "capture", refuse)
    model = tiny_model(1, 1).cuda()
    with pytest.warns(RuntimeWarning, match="capture refused by this test"):
        images = sample(model, 2, (1, 8, 8), generator=torch.Generator(device="cuda").manual_seed(0))
    eager = sample(model, 2, (1, 8, 8), generator=torch.Generator(device="cuda").manual_seed(0), cuda_graphs=False)
    assert (images == eager).double().mean().item() > 0.99


def test_strided_layers_update_on_a_sparse_schedule():
    sampler = FastSampler(tiny_model(1, 1), (1, 8, 8))
    work = sampler.work_per_step()
    steps = {name: {t - 1 for t, k in enumerate(counts) if k} for name, counts in work.items()}
    # every layer computes each of its positions exactly once
    assert sum(work["up0.u0"]) == 64 and sum(work["up1.u0"]) == 16 and sum(work["up2.u0"]) == 4
    # the u stream at H/2 is updated only when a 2nd row is complete, at H/4 only every 4th row
    # (-1: what depends on no pixel at all, computed before the first one)
    assert steps["up1.u0"] == {-1, 15, 31, 47}
    assert steps["up2.u0"] == {-1, 31}
    assert len(steps["up0.u0"]) > len(steps["up1.u0"]) > len(steps["up2.u0"])


def test_same_generator_same_images_and_seeds_differ():
    model = tiny_model(3, 1)
    a = sample(model, 4, (3, 4, 4), generator=torch.Generator().manual_seed(1))
    b = sample(model, 4, (3, 4, 4), generator=torch.Generator().manual_seed(1))
    c = sample(model, 4, (3, 4, 4), generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("channels", [1, 3])
def test_samples_follow_the_models_probabilities(channels):
    """Histogram of a pixel over many draws == the model's conditional pmf averaged over the
    drawn contexts (for RGB: each colour given the earlier colours of the same pixel)."""
    model = tiny_model(channels, 1, filters=4, mix=2, seed=11)
    n = 6000
    images = sample(model, n, (channels, 4, 4), generator=torch.Generator().manual_seed(0))
    i, j = 1, 2
    params = model(images)[:, :, i, j]
    expected = pixel_pmf(params, channels, images[:, :, i, j]).mean(0)      # (C, 256)
    levels = ((images[:, :, i, j] + 1) * 127.5).round().long()
    empirical = torch.stack([torch.bincount(levels[:, c], minlength=256) for c in range(channels)]).double() / n

    def tv(p, q):  # total variation on 16 bins of 16 levels (less noisy than 256 bins)
        return 0.5 * (p.view(channels, 16, 16).sum(-1) - q.view(channels, 16, 16).sum(-1)).abs().sum(-1)

    assert (tv(empirical, expected) < 0.04).all(), tv(empirical, expected)
    if channels == 3:
        # G and B given R (and G) differ from their distribution without that knowledge
        ignoring = pixel_pmf(params, 3, torch.zeros_like(images[:, :, i, j])).mean(0)
        assert (tv(empirical, ignoring)[1:] > 0.08).all(), tv(empirical, ignoring)


def test_temperature():
    model = tiny_model(1, 1, mix=3)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    params = torch.randn(50, 9, dtype=torch.float64, generator=g())
    params[:, 6:] = params[:, 6:].clamp(min=-6.0)
    u_mix = torch.rand(50, 3, dtype=torch.float64, generator=g())
    u_log = torch.rand(50, 1, dtype=torch.float64, generator=g())
    # T divides the logits and multiplies the logistic scales
    scaled = params.clone()
    scaled[:, :3] /= 0.5
    scaled[:, 6:] += math.log(0.5)
    assert torch.equal(sample_pixel(params, 1, u_mix, u_log, 0.5), sample_pixel(scaled, 1, u_mix, u_log, 1.0))
    # T -> 0: the centre of the likeliest component
    cold = sample_pixel(params, 1, u_mix, u_log, 1e-6)
    best = params[:, :3].argmax(1)
    assert torch.equal(cold[:, 0], to_grid(params[torch.arange(50), 3 + best]))
    # lower temperature, less spread in whole images
    spread = [sample(model, 64, (1, 4, 4), temperature=t, generator=g()).std(0).mean() for t in (0.3, 1.0)]
    assert spread[0] < spread[1]
    with pytest.raises(ValueError, match="temperature"):
        sample(model, 1, (1, 4, 4), temperature=0.0)


def test_sample_checks_arguments_and_restores_training_mode():
    model = tiny_model(1, 1).train()
    with pytest.raises(ValueError, match="method"):
        sample(model, 1, (1, 4, 4), method="slow")
    with pytest.raises(ValueError, match="channel"):
        sample(model, 1, (3, 4, 4))
    with pytest.raises(ValueError, match="multiples of 4"):
        sample(model, 1, (1, 6, 4))
    sample(model, 1, (1, 4, 4))
    assert model.training


def test_positions_put_off_to_row_ends_never_run_before_their_sources():
    """``sched`` may put a position off (to the end of its image row) but never before its dependency time or
    before any position it reads, and the output at pixel t is ready before pixel t is drawn; the u stream and
    the ul convolutions' rows above then run a row at a time, so a pixel step in the middle of a row computes
    only ul positions."""
    import re

    h, w = 8, 12
    sampler = FastSampler(tiny_model(3, 2), (3, h, w))
    padded = lambda node: torch.cat([node.sched, torch.tensor([-1])])  # noqa: E731
    for node in sampler.nodes[1:]:
        assert (node.sched >= node.dep).all(), node.name
        for source, _, index in node.gathers:
            assert (node.sched >= padded(source)[index].amax(dim=1)).all(), (node.name, source.name)
        for source in node.same:
            assert (node.sched >= source.sched).all(), (node.name, source.name)
    assert (sampler.last.sched < torch.arange(h * w)).all()
    row_ends = {r * w + w - 1 for r in range(h)} | {-1}
    for node in sampler.nodes[1:]:
        u_stream = any(re.fullmatch(r"u\d*", part) for part in node.name.split("."))
        if u_stream or node.name.endswith(".above") or node.name in ("u_init", "u_0", "ul_init_up"):
            assert set(node.sched.tolist()) <= row_ends, node.name
    middle = sampler.schedule[3 * w + 5 + 1]  # after pixel (3, 5)
    assert middle and all(".ul" in node.name or node.name.startswith("ul") for node, _, _ in middle)
