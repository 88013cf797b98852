"""The CPU filters through OpenCV (degradations.corruptions._opencv) against the torch paths
that serve other devices: equal within float rounding, and the same bytes for any thread count."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import degradations
from degradations.corruptions import _kernels, spatter, weather
from degradations.corruptions._opencv import opencv_ready
from robustret.core.rng import make_generator


def _torch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_kernels, "opencv_ready", lambda x, reach: False)
    monkeypatch.setattr(_kernels, "warp_ready", lambda x: False)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", ["replicate", "reflect"])
def test_the_separable_filter_equals_the_torch_path(dtype, mode, monkeypatch) -> None:
    x = torch.rand(3, 3, 20, 17, dtype=dtype, generator=make_generator(0))
    taps = _kernels.gaussian_taps(1.7)  # 15 taps, reach 7
    taps = taps * np.linspace(0.5, 1.5, len(taps))  # not symmetric: a flip would differ
    assert opencv_ready(x, 7)
    ours = _kernels.separable_filter(x, taps, mode)
    _torch_path(monkeypatch)
    theirs = _kernels.separable_filter(x, taps, mode)
    assert ours.dtype == dtype and ours.shape == x.shape
    torch.testing.assert_close(ours, theirs, atol=1e-6 if dtype == torch.float32 else 1e-12,
                               rtol=0)


@pytest.mark.parametrize(("dtype", "channels"), [(torch.float32, 3), (torch.float32, 2),
                                                 (torch.float64, 3)])
def test_line_motion_blur_equals_the_torch_path(dtype, channels, monkeypatch) -> None:
    """float32: warpAffine translations per tap; float64: cv2.filter2D with the splatted
    kernels; against the padded FFT of the other devices."""
    x = torch.rand(4, channels, 32, 40, dtype=dtype, generator=make_generator(1))
    angle = torch.tensor([-45.0, -10.0, 30.0, 45.0])
    out = torch.empty_like(x)
    ours = _kernels.line_motion_core(x, out, angle, 6.0, 2.0).clone()
    _torch_path(monkeypatch)
    theirs = _kernels.line_motion_core(x, out, angle, 6.0, 2.0)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_zoom_blur_equals_the_torch_path(channels, monkeypatch) -> None:
    """float32 on the CPU: warpAffine per image samples where the interpolation matrices do
    (odd and even sides, a zoom of 1 in the list, 2 channels plane by plane)."""
    x = torch.rand(3, channels, 33, 40, generator=make_generator(4))
    factors = _kernels.zoom_factors(1.3, 0.02)
    assert factors[0] == 1.0 and _kernels.warp_ready(x)
    ours = _kernels.zoom_core(x, torch.empty_like(x), 1.3, 0.02)
    _torch_path(monkeypatch)
    theirs = _kernels.zoom_core(x, torch.empty_like(x), 1.3, 0.02)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


@pytest.mark.parametrize("size", [32, 45])
def test_snow_streaks_equal_the_torch_path(size, monkeypatch) -> None:
    """The streak filter along the canvas rows: cv2.filter2D per image against one pass per
    tap (severity 5: 2 x 14 px radius at 64 px, the longest kernel)."""
    x = torch.rand(3, 3, size, size, generator=make_generator(6))
    ours = degradations.apply(x, "snow", 5, generator=make_generator(7))
    monkeypatch.setattr(weather, "opencv_ready", lambda x, reach: False)
    theirs = degradations.apply(x, "snow", 5, generator=make_generator(7))
    assert not torch.equal(ours, x)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", ["reflect", "mirror", "nearest"])
def test_the_fields_gaussian_smooth_equals_the_torch_path(mode) -> None:
    """scipy's border names on OpenCV's borders (elastic_transform's and spatter's fields)."""
    from degradations.corruptions import _fields

    x = torch.rand(2, 2, 21, 30, generator=make_generator(9))
    taps = _fields.gaussian_taps(2.5, 3.0)  # 17 taps, reach 8
    theirs = _fields.correlate_axis(_fields.correlate_axis(x, taps, -2, mode, 8), taps, -1,
                                    mode, 8)
    torch.testing.assert_close(_fields.gaussian_smooth(x, 2.5, truncate=3.0, mode=mode), theirs,
                               atol=1e-6, rtol=0)


def test_the_fields_3x3_filters_equal_the_torch_path() -> None:
    """spatter's box blur and emboss (OpenCV's mirrored border) against shifted slices."""
    from degradations.corruptions import _fields

    x = torch.rand(3, 1, 17, 22, generator=make_generator(10))
    third = [1 / 3] * 3
    box = _fields.correlate_axis(_fields.correlate_axis(x, third, -2, "mirror", 1), third, -1,
                                 "mirror", 1)
    torch.testing.assert_close(_fields.box3(x), box, atol=1e-6, rtol=0)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")  # mirror: edge left out
    emboss = sum(spatter.EMBOSS[i][j] * padded[..., i : i + 17, j : j + 22]
                 for i in range(3) for j in range(3))
    torch.testing.assert_close(_fields.correlate3x3(x, spatter.EMBOSS), emboss, atol=1e-6,
                               rtol=0)


def test_spatter_edge_distance_equals_the_torch_path() -> None:
    """OpenCV's uint8 dilations per image against pooling: the same steps, early stops, cap,
    an image without drops (never reached: the cap everywhere) and one all drop."""
    from degradations.corruptions._opencv import dilation_distance

    reached = torch.rand(5, 1, 23, 30, generator=make_generator(8)) > 0.985
    reached[3] = False
    reached[4] = True
    for cap in (1, 4, 20):
        ours = dilation_distance(reached, cap)
        assert ours.dtype == torch.float32 and ours.shape == reached.shape
        assert torch.equal(ours, spatter.pooled_distance(reached, cap)), cap
    assert float(ours[3].min()) == 20 and not ours[4].any()
    with pytest.raises(ValueError, match="255"):
        dilation_distance(reached, 256)


@pytest.mark.parametrize("name", ["line_motion_blur", "gaussian_blur", "jpeg", "shot_noise",
                                  "zoom_blur", "snow", "spatter", "elastic_transform"])
def test_the_output_does_not_depend_on_the_thread_count(name) -> None:
    """Images (or planes) spread over threads: the same bytes with one thread and with three."""
    x = torch.rand(7, 3, 32, 32, generator=make_generator(2))
    threads = torch.get_num_threads()
    outputs = []
    try:
        for count in (1, 3):
            torch.set_num_threads(count)
            outputs.append(degradations.apply(x, name, 4, generator=make_generator(5)))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(*outputs)


def test_the_torch_path_serves_what_opencv_cannot() -> None:
    assert not opencv_ready(torch.zeros(1, 1, 8, 8, dtype=torch.float16), 1)
    assert not opencv_ready(torch.zeros(1, 1, 8, 8), 8)  # reach >= side: torch's fallback
    assert not opencv_ready(torch.zeros(1, 1, 8, 8, device="meta"), 1)


def _blur_in_child(queue) -> None:  # type: ignore[no-untyped-def]
    torch.set_num_threads(2)
    x = torch.rand(4, 3, 24, 24, generator=make_generator(3))
    queue.put(float(degradations.apply(x, "gaussian_blur", 3).sum()))


def test_a_forked_child_gets_its_own_thread_pool() -> None:
    """The parent's pool has threads only in the parent: a forked child (a data-loader worker)
    that used it would wait for ever."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        degradations.apply(torch.rand(4, 3, 24, 24), "gaussian_blur", 3)  # the parent's pool
    finally:
        torch.set_num_threads(threads)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_blur_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive and child.exitcode == 0 and queue.get(timeout=5) > 0
