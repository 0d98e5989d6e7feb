"""The torch path of post-production (helpers.post.torch_path) against the numpy reference, on the CPU.

float64: the flow within 1e-6 px and the in-between frames within 1e-6 levels of numpy (the same steps,
in another order of additions). float32 (the default, what a GPU runs): within
``torch_path.FLOAT32_TOLERANCE``. uint8 results (in-betweens, graded frames) within 1 level: rounding.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import post
from helpers.core.cli import main
from helpers.core.demo_images import demo_image
from helpers.post import torch_path

TOL32 = torch_path.FLOAT32_TOLERANCE


def pan(name, size, frames, step):
    """``frames`` frames of a picture panning ``step`` px to the right per frame."""
    w, h = size
    big = np.asarray(demo_image(name).resize((w + step * frames, h), Image.Resampling.BICUBIC))
    return [big[:, step * (frames - k):step * (frames - k) + w].copy() for k in range(frames)]


# Even and odd sizes (the pyramid pads odd sides), flat shapes and a textured photo, small and larger motion.
CLIPS = {"shapes 96x64, 3 px": ("shapes", (96, 64), 3), "planet 101x57, 2 px": ("planet", (101, 57), 2),
         "sunset 160x90, 5 px": ("sunset", (160, 90), 5)}


@pytest.fixture(scope="module", params=list(CLIPS))
def clip(request):
    name, size, step = CLIPS[request.param]
    return pan(name, size, 3, step)


def numpy_flows(frames):
    return np.stack([post.optical_flow(a, b) for a, b in zip(frames[:-1], frames[1:])])


def torch_flows(frames, dtype):
    a, b = torch_path.to_device(frames[:-1], "cpu"), torch_path.to_device(frames[1:], "cpu")
    return a, b, torch_path.optical_flow(a, b, dtype=dtype)


def test_float64_flow_and_inbetweens_match_numpy(clip):
    reference = numpy_flows(clip)
    a, b, flow = torch_flows(clip, torch.float64)
    assert flow.shape == reference.shape and flow.dtype == torch.float64
    assert np.abs(flow.numpy() - reference).max() < 1e-6
    assert np.abs(reference).max() > 1.0, "the clip moves: the flow is not trivially zero"
    for t in (0.25, 0.5):
        mine = torch_path.flow_inbetween(a, b, t, torch.from_numpy(reference)).numpy()
        theirs = np.stack([post.flow_inbetween(x, y, t, f) for x, y, f in zip(clip[:-1], clip[1:], reference)])
        assert np.abs(mine - theirs).max() < 1e-6


def test_float32_flow_and_inbetweens_within_the_stated_tolerance(clip):
    reference = numpy_flows(clip)
    a, b, flow = torch_flows(clip, torch.float32)
    error = np.abs(flow.double().numpy() - reference)
    assert flow.dtype == torch.float32
    assert np.median(error) < TOL32["flow_median_px"] and error.max() < TOL32["flow_max_px"], error.max()
    mine = torch_path.flow_inbetween(a, b, 0.5, flow).double().numpy()
    theirs = np.stack([post.flow_inbetween(x, y, 0.5, f) for x, y, f in zip(clip[:-1], clip[1:], reference)])
    assert np.abs(mine - theirs).max() < TOL32["inbetween_levels"]


@pytest.mark.parametrize("factor", [2, 3])
def test_interpolate_on_the_cpu_equals_numpy_within_one_level(clip, factor):
    by_numpy = post.interpolate(clip, factor, "flow", device="numpy")
    by_torch = post.interpolate(clip, factor, "flow", device="cpu")
    assert len(by_torch) == len(by_numpy) == (len(clip) - 1) * factor + 1
    assert all(f.dtype == np.uint8 and f.shape == clip[0].shape for f in by_torch)
    assert all(np.array_equal(by_torch[k * factor], frame) for k, frame in enumerate(clip)), "originals kept"
    assert max(np.abs(m.astype(int) - n).max() for m, n in zip(by_torch, by_numpy)) <= 1


def test_batches_change_nothing():
    """Pairs and in-betweens split over several batches land in the right places."""
    frames = pan("planet", (64, 48), 6, 2)
    jobs = [(i, t) for i in (4, 0, 2, 1, 3) for t in (0.25, 0.5, 0.75)]  # out of order, across batch edges
    whole = torch_path.inbetweens(frames, jobs, "cpu", torch.float64, batch=16)
    split = torch_path.inbetweens(frames, jobs, "cpu", torch.float64, batch=2)
    assert all(np.array_equal(x, y) for x, y in zip(whole, split))
    one_by_one = [torch_path.inbetweens(frames, [job], "cpu", torch.float64)[0] for job in jobs]
    assert all(np.array_equal(x, y) for x, y in zip(whole, one_by_one))
    assert not np.array_equal(whole[0], whole[1]), "different times give different frames"


def test_speed_change_by_flow_on_the_cpu_equals_numpy():
    frames = pan("shapes", (80, 48), 4, 3)
    slow_numpy = post.change_speed(frames, 0.4, "flow", device="numpy")
    slow_torch = post.change_speed(frames, 0.4, "flow", device="cpu")
    assert len(slow_torch) == len(slow_numpy) == 8
    assert max(np.abs(m.astype(int) - n).max() for m, n in zip(slow_torch, slow_numpy)) <= 1


# ---------------------------------------------------------------- grading


def shuffled_lut(size=5, seed=0):
    """A LUT whose output depends on each input channel differently (blue -> red, red -> green, green
    -> blue, plus a random bend): swapping any two axes of the table gives a very different grade."""
    grid = post.lut_grid(size)
    bend = 0.15 * np.random.default_rng(seed).uniform(-1, 1, grid.shape)
    return post.Lut(np.clip(grid[..., [2, 0, 1]] + bend, 0, 1), "shuffled")


@pytest.mark.parametrize("lut", ["warm", "teal_orange", "shuffled"])
@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_lut_on_the_cpu_equals_numpy_within_one_level(clip, lut, strength):
    table = shuffled_lut() if lut == "shuffled" else lut
    by_numpy = np.stack(post.apply_lut(clip, table, strength, device="numpy")).astype(int)
    by_torch = np.stack(post.apply_lut(clip, table, strength, device="cpu")).astype(int)
    assert np.abs(by_torch - by_numpy).max() <= 1
    assert np.abs(by_torch - np.stack(clip)).mean() > 1, "the grade changes the picture"


def test_lut_axis_order_and_domain(clip):
    shuffled = shuffled_lut(9, seed=1)
    swapped = post.Lut(shuffled.table.transpose(2, 1, 0, 3), "red and blue axes swapped")
    graded = np.stack(post.apply_lut(clip, shuffled, device="cpu")).astype(int)
    assert np.abs(graded - np.stack(post.apply_lut(clip, swapped, device="numpy"))).mean() > 10, \
        "a table read with its axes swapped would grade differently"
    narrow = post.Lut(shuffled.table, "narrow domain", (0.1, 0.2, 0.0), (0.9, 1.0, 0.8))
    by_numpy = np.stack(post.apply_lut(clip, narrow, device="numpy")).astype(int)
    assert np.abs(np.stack(post.apply_lut(clip, narrow, device="cpu")) - by_numpy).max() <= 1


# ---------------------------------------------------------------- which device


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_falls_back_to_the_cpu_without_cuda(no_cuda):
    assert torch_path.resolve_device("auto") == torch_path.resolve_device(None) == torch_path.CPU_PATH == "cpu"
    assert torch_path.resolve_device("numpy") == "numpy" and torch_path.resolve_device(" CPU ") == "cpu"
    assert torch_path.describe_device("auto").startswith("torch on the CPU")
    assert "numpy" in torch_path.describe_device("numpy")


@pytest.mark.parametrize("device, words", [
    ("cuda", "no CUDA GPU is available here"),
    ("cuda:0", "no CUDA GPU is available here"),
    ("gpu", "unknown post-production device 'gpu'"),
])
def test_unavailable_or_unknown_device_is_one_clear_line(no_cuda, device, words):
    frames = pan("shapes", (32, 24), 2, 1)
    for call in (lambda: post.interpolate(frames, 2, "flow", device), lambda: post.apply_lut(frames, "warm", 1, device),
                 lambda: post.check_settings(post.post_settings(device=device))):
        with pytest.raises(ValueError) as err:
            call()
        assert words in str(err.value) and "\n" not in str(err.value)


def test_cli_says_which_path_ran_and_refuses_cuda_without_a_gpu(outputs, capsys, no_cuda):
    assert main(["post", "--device", "cuda"]) == 2
    assert "no CUDA GPU is available here" in capsys.readouterr().err
    assert not (outputs / "final" / "final.mp4").exists()
    assert main(["post", "--formats", "mp4", "--title", ""]) == 0
    printed = capsys.readouterr().out
    assert "post-production runs on: torch on the CPU" in printed
    assert main(["post", "--formats", "mp4", "--title", "", "--device", "numpy"]) == 0
    assert "post-production runs on: numpy on the CPU" in capsys.readouterr().out


def test_no_matmul_or_convolution_so_tf32_never_applies():
    """On Ampere and newer GPUs float32 matmuls and convolutions may run in TF32 (10-bit mantissa); the torch
    path uses neither, so its float32 tolerance holds on a GPU as on this CPU."""
    from torch.overrides import TorchFunctionMode

    called = set()

    class Record(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            called.add(getattr(func, "__name__", str(func)))
            return func(*args, **(kwargs or {}))

    frames = pan("planet", (64, 48), 3, 2)
    with Record():
        torch_path.inbetweens(frames, [(0, 0.5), (1, 0.5)], "cpu")
        torch_path.apply_lut(frames, post.make_lut("warm", 5).table, (0, 0, 0), (1, 1, 1), 1.0, "cpu")
    assert {"grid_sample", "gradient"} <= called, called          # the recorder sees the work
    forbidden = {"matmul", "mm", "bmm", "einsum", "linear", "conv1d", "conv2d", "conv3d", "__matmul__", "tensordot"}
    assert not called & forbidden, called & forbidden


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_float32_within_the_stated_tolerance():
    frames = pan("planet", (160, 90), 3, 3)
    reference = numpy_flows(frames)
    a, b = torch_path.to_device(frames[:-1], "cuda"), torch_path.to_device(frames[1:], "cuda")
    error = np.abs(torch_path.optical_flow(a, b).double().cpu().numpy() - reference)
    assert np.median(error) < TOL32["flow_median_px"] and error.max() < TOL32["flow_max_px"]
    by_numpy = post.interpolate(frames, 2, "flow", device="numpy")
    by_cuda = post.interpolate(frames, 2, "flow", device="cuda")
    assert max(np.abs(m.astype(int) - n).max() for m, n in zip(by_cuda, by_numpy)) <= TOL32["uint8_levels"]
    graded = np.stack(post.apply_lut(frames, "warm", device="cuda")).astype(int)
    assert np.abs(graded - np.stack(post.apply_lut(frames, "warm", device="numpy"))).max() <= TOL32["uint8_levels"]


# ---------------------------------------------------------------- the fast paths' building blocks, float64


@pytest.mark.parametrize("shape", [(37, 53), (5, 9)])
@pytest.mark.parametrize("radius", [1, 3, 7])
def test_box_mean_by_separable_cumulative_sums_equals_numpy(shape, radius):
    image = np.random.default_rng(radius).random(shape)
    mine = torch_path.box_mean(torch.from_numpy(image)[None, None], radius)[0, 0].numpy()
    assert np.abs(mine - post.box_mean(image, radius)).max() < 1e-12
    assert np.abs(mine - image).max() > 0.05, "the window mean smooths"


@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_dense_lut_in_float64_is_exactly_the_numpy_grade(clip, strength):
    """The 256^3 table follows the numpy apply_lut's operations in the same order: equal, not just close."""
    lut = shuffled_lut(9, seed=2)
    lut = post.Lut(lut.table, "narrow", (0.1, 0.2, 0.0), (0.9, 1.0, 0.8))
    dense = torch_path.dense_lut(lut.table, lut.domain_min, lut.domain_max, strength, "cpu", torch.float64).numpy()
    frames = np.stack(clip).astype(np.int64)
    graded = dense[(frames[..., 2] * 256 + frames[..., 1]) * 256 + frames[..., 0]]
    assert np.array_equal(graded, np.stack(post.apply_lut(clip, lut, strength, device="numpy")))


def test_lut_by_gather_and_by_grid_sample_agree_within_one_level(monkeypatch, clip):
    table = post.make_lut("teal_orange", 9).table
    monkeypatch.setattr(torch_path, "DENSE_LUT_PIXELS", 0)
    gathered = np.stack(torch_path.apply_lut(clip, table, (0, 0, 0), (1, 1, 1), 0.6, "cpu")).astype(int)
    sampled = np.stack(torch_path.lut_grid_sample(clip, table, (0, 0, 0), (1, 1, 1), 0.6, "cpu"))
    assert np.abs(gathered - sampled).max() <= 1 and np.abs(gathered - np.stack(clip)).mean() > 1


def test_inbetweens_of_a_pan_take_entering_content_from_the_neighbour_that_shows_it():
    """A 6 px pan: the columns that enter the picture are in b only; the edge-aware blend gets them right."""
    frames = pan("planet", (96, 64), 3, 3)
    a, b, truth = (f.astype(float) for f in (frames[0], frames[2], frames[1]))
    flow = np.zeros(a.shape[:2] + (2,))
    flow[..., 0] = 6.0                                    # the content moves right by 6 px from a to b
    made = post.flow_inbetween(a, b, 0.5, flow)
    ys, xs = np.mgrid[0:64, 0:96].astype(float)
    plain = 0.5 * post.bilinear_sample(a, xs - 3, ys) + 0.5 * post.bilinear_sample(b, xs + 3, ys)
    edge = np.s_[:, :3]                                   # where a's read falls off the frame
    assert np.abs(made[edge] - truth[edge]).mean() < 0.5 * np.abs(plain[edge] - truth[edge]).mean()
    assert np.abs(made[:, 8:-8] - plain[:, 8:-8]).max() < 1e-9, "inside the frame: the plain blend"


def test_dense_lut_is_built_once_per_lut_and_strength(monkeypatch):
    """The 256^3 table is kept for the next clip: same LUT and strength, the same table; a new strength, a new one."""
    monkeypatch.setattr(torch_path, "_DENSE_CACHE", {})
    lut = post.make_lut("warm", 5)
    build = lambda strength: torch_path.cached_dense_lut(lut.table, lut.domain_min, lut.domain_max, strength, "cpu")
    first = build(1.0)
    assert build(1.0) is first and build(0.5) is not first
    assert torch.equal(first, torch_path.dense_lut(lut.table, lut.domain_min, lut.domain_max, 1.0, "cpu"))
    build(0.25)
    assert len(torch_path._DENSE_CACHE) == torch_path.DENSE_CACHE_SIZE, "only the newest tables are kept"


def test_cpu_map_keeps_the_order_and_the_callers_thread_count():
    """Worker threads of one torch thread each: results in order, and the caller's own thread count untouched."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = torch_path.cpu_map(lambda k: (k * k, torch.get_num_threads()), list(range(7)), "cpu")
        assert [square for square, _ in seen] == [k * k for k in range(7)]
        assert {threads for _, threads in seen} == {1} and torch.get_num_threads() == 2
        assert torch_path.cpu_map(lambda k: k, [], "cpu") == []
    finally:
        torch.set_num_threads(before)
