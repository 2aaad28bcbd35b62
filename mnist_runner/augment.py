"""Data augmentation on the device: random affine and elastic distortions of a training batch.

`Augment` holds the strengths (the `augment` config group: `none`, `affine`, `elastic`). Called on
a float batch (N, C, H, W) whose pixels are scaled to [0, 1] and not yet normalized, it draws each
sample's transform from the run's `torch.Generator` and resamples the whole batch where it lives
(CPU or CUDA), with no per-sample Python work:

1. per-sample affine maps, about the image centre: scale by a factor in [1 - scale, 1 + scale],
   shear along x by an angle in [-shear, shear] degrees, rotate by an angle in [-rotation,
   rotation] degrees (counter-clockwise on screen), then shift by up to `translate` of the width
   and of the height (each axis independently); their inverses, 2 x 3 matrices as `F.affine_grid`
   takes them, give every output pixel the position it reads from (`affine_grid`);
2. when alpha > 0, Simard, Steinkraus & Platt's elastic distortion (2003): a displacement field,
   uniform in [-1, 1] per pixel and axis, smoothed by a Gaussian of `sigma` pixels (separable, mirrored
   at the edges) and scaled by `alpha` pixels, added to those positions;
3. one bilinear `F.grid_sample`, so the image is interpolated once however many transforms act.

Conventions the caller relies on:

* Pixels outside the image read as 0 (padding_mode="zeros"), which is the black background only
  before normalization: augment after the uint8 -> [0, 1] scaling, normalize afterwards. Bilinear
  weights are non-negative and sum to at most 1, so the output stays in [0, 1].
* align_corners=False everywhere: grid coordinates -1 and 1 are the outer edges of the image, so a
  pixel is 2 / size grid units on each axis, the identity grid falls exactly on pixel centres, and
  the centre of rotation is the centre of the image (torchvision's affine and elastic transforms
  use the same convention).
* The random numbers come from the given generator only (never the global RNG), in a fixed order:
  N x 5 uniforms for the affine parameters, then, when alpha > 0, N x 2 x H x W for the field. The
  same generator state gives the same bits; `identity` (every strength 0, the `none` option) lets
  the caller skip the call, which then draws nothing. Labels are never seen.
"""

from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import lru_cache

import torch
from torch.nn import functional as F

from .registry import ConfigError
from .rules import broken, number, show

# What each strength must be (rules.py): every lower bound is 0, included.
RULES = {
    "rotation": number(0, 180, high_open=True),  # degrees; [-180, 180] would be every angle
    "translate": number(0, 1),  # a fraction of the size: 1 may shift the digit out of the frame
    "scale": number(0, 1, high_open=True),  # a factor 1 - 1 = 0 would collapse the image to a point
    "shear": number(0, 90, high_open=True),  # tan(90 degrees) is infinite
    "alpha": number(0),
    "sigma": number(0),
}


@dataclass(frozen=True)
class Augment:
    """Strengths of the random distortions; all zero (the default) is no augmentation."""

    rotation: float = 0.0  # max absolute angle, degrees
    translate: float = 0.0  # max absolute shift, a fraction of the width and of the height
    scale: float = 0.0  # max relative change of size
    shear: float = 0.0  # max absolute shear angle along x, degrees
    alpha: float = 0.0  # elastic displacement scale, pixels (0: no elastic distortion)
    sigma: float = 4.0  # width of the elastic field's Gaussian smoothing, pixels (Simard's MNIST value)

    def __post_init__(self):
        for key, rule in RULES.items():
            if message := broken(f"augment.{key}", getattr(self, key), rule):
                raise ConfigError(message)
        if self.alpha > 0 and self.sigma == 0:
            raise ConfigError(
                f"augment.sigma={show(self.sigma)} is not allowed with augment.alpha={show(self.alpha)}; "
                "it must be a number > 0"
            )

    @classmethod
    def from_config(cls, cfg: Mapping) -> "Augment":
        """The `augment` config group's entry (validate.py refuses unknown keys). Its strengths decide what is
        drawn; `name: none` with a strength that is not 0 is refused, so `augment=none` means none."""
        augment = cls(**{f.name: cfg[f.name] for f in fields(cls) if f.name in cfg})
        if cfg.get("name") == "none" and not augment.identity:
            key = next(k for k in ("rotation", "translate", "scale", "shear", "alpha") if getattr(augment, k))
            raise ConfigError(
                f"augment.{key}={show(getattr(augment, key))} is not allowed with augment=none (no augmentation); "
                "choose augment=affine or augment=elastic to distort the training digits, or set it to 0"
            )
        return augment

    @property
    def identity(self) -> bool:
        """True when every strength is zero: calling would return the batch unchanged, so skip it."""
        return not (self.rotation or self.translate or self.scale or self.shear or self.alpha)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The augmented batch, or `x` itself (drawing nothing) when `identity`."""
        return x if self.identity else self.warp(x, generator)

    def warp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Draw and apply one distortion per sample, always through the sampling path (even at strength 0)."""
        n, _, height, width = x.shape
        theta = self.matrices(n, height, width, generator, x.device)
        field = self.displacement(n, height, width, generator, x.device) if self.alpha else None
        return resample(x, theta, field)

    def matrices(self, n: int, height: int, width: int, generator: torch.Generator, device) -> torch.Tensor:
        """(n, 2, 3) random affine matrices (see `affine_matrices`); draws n x 5 uniforms."""
        u = torch.rand(n, 5, generator=generator, device=device).mul_(2).sub_(1)  # [-1, 1)
        rotation, shear, scale, shift_x, shift_y = u.unbind(1)
        return affine_matrices(
            rotation * self.rotation,
            shear * self.shear,
            1 + scale * self.scale,
            shift_x * (self.translate * width),
            shift_y * (self.translate * height),
            height,
            width,
        )

    def displacement(self, n: int, height: int, width: int, generator: torch.Generator, device) -> torch.Tensor:
        """(n, 2, height, width) elastic displacements, (x, y) in grid units; draws n x 2 x H x W uniforms."""
        field = torch.rand(n, 2, height, width, generator=generator, device=device).mul_(2).sub_(1)
        field = smooth(field, self.sigma)  # pixels per unit of alpha
        field[:, 0] *= 2 * self.alpha / width  # grid units: a pixel is 2 / size
        field[:, 1] *= 2 * self.alpha / height
        return field


class Augmentation:
    """A run's augmentation: its strengths and its own generator, on the data's device (seeded from the run's
    seed, but a stream of its own: the shuffling's generator draws the same seed's numbers). `batch` is what
    the training loop calls on each batch (data.Data.prepare); the generator's state goes into the checkpoint."""

    def __init__(self, augment: Augment, device, seed: int):
        self.augment = augment
        self.generator = torch.Generator(device=device).manual_seed(seed + (1 << 32))

    @classmethod
    def of(cls, cfg, device, seed: int) -> "Augmentation | None":
        """The run's augmentation from its `augment` config; None for none (no draws, batches as loaded)."""
        augment = Augment.from_config(cfg) if cfg is not None else Augment()
        return None if augment.identity else cls(augment, device, seed)

    def batch(self, x: torch.Tensor) -> torch.Tensor:
        return self.augment.warp(x, self.generator)


def affine_matrices(
    rotation: torch.Tensor,
    shear: torch.Tensor,
    scale: torch.Tensor,
    shift_x: torch.Tensor,
    shift_y: torch.Tensor,
    height: int,
    width: int,
) -> torch.Tensor:
    """(N, 2, 3) matrices, as `F.affine_grid` (align_corners=False) takes them, that move each image's content:
    scale by `scale` (a factor), shear along x by `shear` degrees, rotate counter-clockwise on screen by
    `rotation` degrees, all about the image centre, then shift by (`shift_x`, `shift_y`) pixels (y down).

    They map output to input positions, so each matrix is the inverse of that transform,
    written out: (1 / scale) * shear(-shear) @ rotate(-rotation), in pixels, then taken to grid units
    (x by 2 / width, y by 2 / height).
    """
    angle = torch.deg2rad(rotation)
    slant = torch.tan(torch.deg2rad(shear))
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    a, b = cos - slant * sin, -(sin + slant * cos)  # the inverse's rows, in pixels
    c, d = sin, cos
    b, c = b * (height / width), c * (width / height)  # in grid units: a pixel is 2 / size on each axis
    tx, ty = shift_x * (2 / width), shift_y * (2 / height)
    return torch.stack((a, b, -(a * tx + b * ty), c, d, -(c * tx + d * ty)), dim=1).view(-1, 2, 3)


def resample(x: torch.Tensor, theta: torch.Tensor, displacement: torch.Tensor | None = None) -> torch.Tensor:
    """`x` sampled bilinearly, zeros outside, where the affine maps `theta` (N, 2, 3) plus `displacement`
    (N, 2, H, W; grid units) send each output pixel."""
    grid = affine_grid(theta.to(x.dtype), *x.shape[-2:])
    if displacement is not None:
        grid += displacement.to(x.dtype)
    grid = grid.permute(0, 2, 3, 1).contiguous()  # (N, H, W, 2), as grid_sample reads it
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def affine_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, 2, H, W): the (x, y) position, in grid units, that `theta` sends each output pixel's centre to.

    This is `F.affine_grid(theta, (N, C, H, W), align_corners=False)` (to float rounding) with its last
    axis moved second, built as broadcast sums a * x + b * y + c over the pixel centres: F.affine_grid
    costs ~10x more on the CPU, as it fills an (N, H, W, 3) grid and multiplies it by N 3 x 2 matrices.
    """
    xs = torch.arange(width, dtype=theta.dtype, device=theta.device).mul_(2).add_(1).div_(width).sub_(1)
    ys = torch.arange(height, dtype=theta.dtype, device=theta.device).mul_(2).add_(1).div_(height).sub_(1)
    a, b, c = theta[..., None, None].unbind(2)  # (N, 2, 1, 1) each: the coefficients of x, y and 1
    return a * xs + (b * ys[:, None] + c)


def smooth(field: torch.Tensor, sigma: float) -> torch.Tensor:
    """`field` (..., H, W) smoothed by a Gaussian of `sigma` pixels, separably: a 1-D filter along x, then
    along y, each one matrix product (`gaussian_matrix`) over the last axis of the field (transposed for y)."""
    height, width = field.shape[-2:]
    rows = gaussian_matrix(height, float(sigma), field.device)
    cols = gaussian_matrix(width, float(sigma), field.device)
    along_x = field @ cols.T
    return (along_x.mT @ rows.T).mT


@lru_cache(maxsize=16)
def gaussian_matrix(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    """The 1-D Gaussian filter of `sigma` pixels over `size` pixels, as a (size, size) float32 matrix.

    Row i holds the weights output pixel i takes from each input pixel. The kernel is truncated at
    3 sigma (radius int(3 * sigma + 0.5)) and normalized to sum 1; the signal is mirrored at the
    edges (d c b a | a b c d, scipy.ndimage's "reflect"), so the field is as strong at the border as
    in the middle (zero padding would weaken it there), for any sigma, even one wider than the image.
    Built in float64 on the CPU, so every device gets the same matrix.
    """
    radius = int(3 * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1)
    weights = torch.exp(-0.5 * (offsets.double() / sigma) ** 2)
    source = (torch.arange(size)[:, None] + offsets).remainder(2 * size)  # the pixel each tap reads, mirrored
    source = torch.where(source < size, source, 2 * size - 1 - source)
    matrix = torch.zeros(size, size, dtype=torch.float64)
    matrix.scatter_add_(1, source, (weights / weights.sum()).expand(size, -1))
    return matrix.to(device=device, dtype=torch.float32)
