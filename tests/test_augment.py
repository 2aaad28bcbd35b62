"""Data augmentation on the device (mnist_runner.augment): what each transform does, where its random
numbers come from, and which strengths are refused.

Images are small synthetic ones on black: a bright square, a Gaussian blob, a digit-like stroke.
Coordinates are pixel indices (x = column, y = row, y down); the image centre is ((W-1)/2, (H-1)/2).
"""

import math

import numpy as np
import pytest
import torch
from conftest import compose_config
from omegaconf import OmegaConf
from scipy.ndimage import gaussian_filter1d
from torch.nn import functional as F

from mnist_runner.augment import Augment, affine_grid, affine_matrices, gaussian_matrix, resample, smooth
from mnist_runner.registry import ConfigError
from mnist_runner.validate import validate

AFFINE = Augment(rotation=15, translate=0.1, scale=0.1, shear=10)
ELASTIC = Augment(rotation=15, translate=0.1, scale=0.1, shear=10, alpha=34, sigma=4)


def blob(cx: float, cy: float, height: int = 28, width: int = 28, sd: float = 1.5) -> torch.Tensor:
    """A (1, 1, H, W) Gaussian spot of peak 1 centred at pixel (cx, cy)."""
    y, x = torch.meshgrid(
        torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij"
    )
    return torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sd**2))[None, None]


def strokes(n: int = 32) -> torch.Tensor:
    """(n, 1, 28, 28) digit-like 7s: a bar and a diagonal, shifted a little from one image to the next."""
    x = torch.zeros(n, 1, 28, 28)
    for i in range(n):
        dx, dy = i % 5 - 2, i // 5 % 5 - 2
        x[i, 0, 6 + dy : 9 + dy, 7 + dx : 21 + dx] = 1.0
        for r in range(9, 23):
            c = 20 + dx - (r - 9) // 2
            x[i, 0, r + dy, c - 1 : c + 2] = 0.8
    return x


def centroid(image: torch.Tensor) -> tuple[float, float]:
    """(x, y) centre of mass of a (1, 1, H, W) image."""
    h, w = image.shape[-2:]
    mass = image.sum()
    x = (image.sum(dim=-2).flatten() * torch.arange(w)).sum() / mass
    y = (image.sum(dim=-1).flatten() * torch.arange(h)).sum() / mass
    return x.item(), y.item()


def transform(x, rotation=0.0, shear=0.0, scale=1.0, shift=(0.0, 0.0)) -> torch.Tensor:
    """`x` moved by one chosen affine transform (every sample alike), through the real sampling path."""
    n, _, h, w = x.shape
    args = [torch.full((n,), float(v)) for v in (rotation, shear, scale, *shift)]
    return resample(x, affine_matrices(*args, h, w))


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- Randomness: drawn from the given generator only, reproducible bit for bit ----------------------


@pytest.mark.parametrize("augment", [AFFINE, ELASTIC], ids=["affine", "elastic"])
def test_batches_change_between_calls_and_repeat_for_the_same_seed(augment):
    x = strokes()
    g = generator(7)
    first, second = augment(x, g), augment(x, g)  # two epochs: the generator has moved on
    assert first.shape == x.shape and first.dtype == x.dtype
    assert (first - x).abs().amax(dim=(1, 2, 3)).min() > 0.1  # every sample changed
    assert (first - second).abs().amax(dim=(1, 2, 3)).min() > 0.1
    again = augment(x, generator(7))
    assert torch.equal(first, again)
    assert not torch.equal(first, augment(x, generator(8)))


@pytest.mark.parametrize("augment", [AFFINE, ELASTIC], ids=["affine", "elastic"])
def test_same_generator_state_same_bits_and_the_global_rng_untouched(augment):
    x = strokes()
    g = generator(3)
    state = g.get_state()
    global_state = torch.get_rng_state()
    out = augment(x, g)
    assert torch.equal(torch.get_rng_state(), global_state)
    assert not torch.equal(g.get_state(), state)  # the draws came from g
    g.set_state(state)
    assert torch.equal(augment(x, g), out)  # as a resumed run restores the state from its checkpoint


def test_bits_do_not_depend_on_the_thread_count():
    x = strokes(64)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ELASTIC(x, generator(5))
        torch.set_num_threads(max(2, threads))
        many = ELASTIC(x, generator(5))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, many)


def test_draw_order_is_affine_parameters_then_the_field():
    """N x 5 uniforms, then N x 2 x H x W: the order the checkpointed generator state depends on."""
    n = 16
    g = generator(11)
    theta = ELASTIC.matrices(n, 28, 28, g, "cpu")
    field = ELASTIC.displacement(n, 28, 28, g, "cpu")
    replay = generator(11)
    u = torch.rand(n, 5, generator=replay) * 2 - 1
    v = torch.rand(n, 2, 28, 28, generator=replay) * 2 - 1
    assert torch.equal(theta, ELASTIC.matrices(n, 28, 28, generator(11), "cpu"))
    expected_angle = u[:, 0] * 15
    angle = torch.rad2deg(torch.atan2(theta[:, 1, 0], theta[:, 1, 1]))  # row 2 of the inverse: (sin, cos) / s
    torch.testing.assert_close(angle, expected_angle, atol=1e-4, rtol=0)
    torch.testing.assert_close(field * 14 / 34, smooth(v, 4.0), atol=1e-6, rtol=0)  # grid units -> pixels / alpha


@pytest.mark.parametrize("size", [(28, 28), (24, 40)], ids=["square", "wide"])
def test_the_grid_is_f_affine_grids(size):
    h, w = size
    theta = ELASTIC.matrices(16, h, w, generator(), "cpu")
    expected = F.affine_grid(theta, [16, 1, h, w], align_corners=False)
    torch.testing.assert_close(affine_grid(theta, h, w).permute(0, 2, 3, 1), expected, atol=1e-6, rtol=0)


# --- No augmentation -----------------------------------------------------------------------------


def test_zero_strength_is_the_identity_through_the_sampling_path():
    x = strokes()
    none = Augment()
    assert none.identity and Augment(sigma=0).identity
    torch.testing.assert_close(none.warp(x, generator()), x, atol=1e-5, rtol=0)  # the grid, not the short-cut
    torch.testing.assert_close(Augment(sigma=2.0).warp(x.double(), generator()), x.double(), atol=1e-12, rtol=0)
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert torch.equal(none.matrices(4, 28, 28, generator(), "cpu"), identity.expand(4, 2, 3))


def test_identity_short_cut_returns_the_batch_and_draws_nothing():
    x, g = strokes(), generator()
    state = g.get_state()
    assert Augment()(x, g) is x
    assert torch.equal(g.get_state(), state)
    for strength in ("rotation", "translate", "scale", "shear", "alpha"):
        assert not Augment(**{strength: 0.1}).identity


# --- Each transform does what it says ------------------------------------------------------------


@pytest.mark.parametrize("shift", [(3, -2), (-5, 4), (0, 1)])
def test_translation_by_whole_pixels_moves_the_square_by_as_many(shift):
    x = torch.zeros(2, 1, 28, 28)
    x[:, :, 10:16, 9:17] = 1.0
    moved = transform(x, shift=shift)
    torch.testing.assert_close(moved, torch.roll(x, shifts=(shift[1], shift[0]), dims=(2, 3)), atol=1e-4, rtol=0)


@pytest.mark.parametrize("size", [(28, 28), (24, 40)], ids=["square", "wide"])
@pytest.mark.parametrize("angle", [30.0, -60.0, 90.0])
def test_rotation_turns_an_off_centre_blob_about_the_centre_and_keeps_its_mass(angle, size):
    h, w = size
    cx, cy = (w - 1) / 2, (h - 1) / 2
    x = blob(cx + 6, cy, h, w)
    turned = transform(x, rotation=angle)
    a = math.radians(angle)
    expected = (cx + 6 * math.cos(a), cy - 6 * math.sin(a))  # counter-clockwise on screen, y down
    assert centroid(turned) == pytest.approx(expected, abs=0.05)
    assert turned.sum().item() == pytest.approx(x.sum().item(), rel=0.03)


def test_shear_slides_rows_in_proportion_to_their_height():
    above, middle = blob(13.5, 13.5 - 6, sd=1.2), blob(13.5, 13.5, sd=1.2)
    shift = math.tan(math.radians(20)) * -6  # x' = x + tan(shear) * y, about the centre
    assert centroid(transform(above, shear=20))[0] == pytest.approx(13.5 + shift, abs=0.05)
    assert centroid(transform(middle, shear=20)) == pytest.approx((13.5, 13.5), abs=0.02)


@pytest.mark.parametrize("factor", [1.5, 0.7])
def test_scale_changes_the_area_by_its_square(factor):
    square = torch.zeros(1, 1, 28, 28)
    square[:, :, 9:19, 9:19] = 1.0  # 10 x 10 about the centre
    scaled = transform(square, scale=factor)
    assert scaled.sum().item() == pytest.approx(100 * factor**2, rel=0.02)  # area: the pixels' coverage
    width, height = ((scaled[0, 0] > 0.01).any(dim) for dim in (0, 1))  # columns and rows it touches
    assert abs(width.sum() - 10 * factor) <= 1 and abs(height.sum() - 10 * factor) <= 1
    spot = blob(13.5, 13.5, sd=2.5)
    assert transform(spot, scale=factor).sum().item() == pytest.approx(spot.sum().item() * factor**2, rel=0.03)
    assert centroid(scaled) == pytest.approx((13.5, 13.5), abs=0.02)


def test_the_transforms_compose_as_scale_shear_rotate_then_shift():
    h, w = 28, 34
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    offset = np.array([4.0, -3.0])
    x = blob(*(centre + offset), h, w, sd=1.2)
    angle, shear, factor, shift = 25.0, 10.0, 1.2, (2.0, -1.5)
    out = transform(x, rotation=angle, shear=shear, scale=factor, shift=shift)
    a, k = math.radians(angle), math.tan(math.radians(shear))
    rotate = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    expected = centre + rotate @ np.array([[1, k], [0, 1]]) @ (factor * offset) + shift
    assert centroid(out) == pytest.approx(tuple(expected), abs=0.1)


def test_random_parameters_stay_within_their_ranges():
    n, g = 64, generator(2)
    theta = Augment(rotation=10).matrices(n, 28, 28, g, "cpu")
    angle = torch.rad2deg(torch.atan2(theta[:, 1, 0], theta[:, 0, 0]))
    assert angle.abs().max() <= 10 and angle.max() > 8 and angle.min() < -8
    theta = Augment(translate=0.1).matrices(n, 28, 28, g, "cpu")
    shift = -theta[:, :, 2] * 14  # grid units -> pixels
    assert shift.abs().max() <= 2.8 + 1e-5 and shift.abs().max() > 2.4
    assert (shift[:, 0] - shift[:, 1]).abs().max() > 0.5  # the axes are drawn independently
    theta = Augment(scale=0.2).matrices(n, 28, 28, g, "cpu")
    factor = torch.linalg.det(theta[:, :, :2]).rsqrt()
    assert factor.min() >= 0.8 - 1e-5 and factor.max() <= 1.2 + 1e-5 and factor.max() - factor.min() > 0.3


# --- Elastic distortion (Simard, Steinkraus & Platt 2003) ---------------------------------------


@pytest.mark.parametrize("sigma", [0.7, 4.0, 12.0])
def test_smoothing_is_scipys_separable_gaussian_with_reflection(sigma):
    field = torch.rand(3, 2, 28, 20, generator=generator()) * 2 - 1
    expected = field.double().numpy()
    for axis in (-2, -1):
        expected = gaussian_filter1d(expected, sigma, axis=axis, mode="reflect", truncate=3.0)
    torch.testing.assert_close(smooth(field, sigma), torch.from_numpy(expected).float(), atol=1e-6, rtol=0)
    assert torch.allclose(gaussian_matrix(28, sigma, torch.device("cpu")).sum(1), torch.ones(28))


@pytest.mark.parametrize("size", [(28, 28), (24, 40)], ids=["square", "wide"])
def test_elastic_moves_pixels_by_alpha_times_the_smoothed_field(size):
    """On a linear ramp, bilinear sampling is exact, so the change of each pixel is the ramp's slope
    times its displacement: compared with alpha * scipy's smoothing of the same uniforms."""
    (h, w), n, alpha, sigma = size, 16, 0.6, 6.0
    y, x = torch.meshgrid(torch.arange(float(h)), torch.arange(float(w)), indexing="ij")
    ramp = ((x + 2 * y) / 100).expand(n, 1, h, w)
    out = Augment(alpha=alpha, sigma=sigma).warp(ramp, generator(4))
    replay = generator(4)
    torch.rand(n, 5, generator=replay)  # the affine parameters come first
    uniform = (torch.rand(n, 2, h, w, generator=replay) * 2 - 1).double().numpy()
    field = alpha * gaussian_filter1d(gaussian_filter1d(uniform, sigma, -1, truncate=3.0), sigma, -2, truncate=3.0)
    dx, dy = torch.from_numpy(field).float().unbind(1)
    inside = (slice(None), slice(2, -2), slice(2, -2))  # where the four neighbours lie in the image
    torch.testing.assert_close((out - ramp)[:, 0][inside], ((dx + 2 * dy) / 100)[inside], atol=1e-5, rtol=0)
    assert 0.02 < dx.abs().max() <= alpha  # a smooth uniform field: never beyond alpha pixels


def test_elastic_output_stays_in_the_unit_interval():
    x = strokes(64)
    out = ELASTIC(x, generator(9))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1 + 1e-6
    assert (out - x).abs().mean() > 0.02


# --- Bad strengths -------------------------------------------------------------------------------

BAD = [
    ({"rotation": -5}, "augment.rotation=-5 is not allowed; it must be a number in [0, 180)"),
    ({"rotation": 180}, "augment.rotation=180 is not allowed"),
    ({"rotation": "abc"}, "augment.rotation='abc' is not allowed"),
    ({"translate": 1.5}, "augment.translate=1.5 is not allowed; it must be a number in [0, 1]"),
    ({"translate": -0.1}, "augment.translate=-0.1 is not allowed"),
    ({"scale": 1}, "augment.scale=1 is not allowed; it must be a number in [0, 1)"),
    ({"scale": True}, "augment.scale=true is not allowed"),
    ({"shear": 90}, "augment.shear=90 is not allowed; it must be a number in [0, 90)"),
    ({"shear": -1}, "augment.shear=-1 is not allowed"),
    ({"alpha": -34}, "augment.alpha=-34 is not allowed; it must be a number >= 0"),
    ({"alpha": float("inf")}, "augment.alpha=inf is not allowed"),
    ({"sigma": -4}, "augment.sigma=-4 is not allowed; it must be a number >= 0"),
    ({"sigma": float("nan")}, "augment.sigma=nan is not allowed"),
    ({"alpha": 34, "sigma": 0}, "augment.sigma=0 is not allowed with augment.alpha=34; it must be a number > 0"),
    ({"alpha": None}, "augment.alpha=null is not allowed"),
]


@pytest.mark.parametrize("kwargs, message", BAD, ids=[m.split(" ")[0] for _, m in BAD])
def test_bad_strengths_are_one_line_config_errors(kwargs, message):
    with pytest.raises(ConfigError) as e:
        Augment(**kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_from_config_reads_the_group_entry():
    cfg = OmegaConf.create({"name": "elastic", "alpha": 34, "sigma": 4})
    assert Augment.from_config(cfg) == Augment(alpha=34, sigma=4)
    assert Augment.from_config({"name": "none"}).identity
    with pytest.raises(ConfigError, match=r"^augment.rotate is not a key; did you mean augment.rotation\?$"):
        validate(compose_config("augment=affine", "+augment.rotate=15"))
    with pytest.raises(ConfigError, match=r"augment.rotation=200 is not allowed"):
        Augment.from_config(OmegaConf.create({"rotation": 200}))
