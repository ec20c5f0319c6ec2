"""Training augmentation: random crop from a padded image plus random horizontal flip."""

import torch
import torch.nn.functional as F


def random_crop_flip(
    x: torch.Tensor, padding: int = 4, *, generator: torch.Generator, pad_value: float = -1.0
) -> torch.Tensor:
    """Randomly crop and flip each image of ``x`` (N, C, H, W); returns a new (N, C, H, W) tensor.

    Each image is padded by ``padding`` on every side with ``pad_value`` and an H x W window is
    taken at a uniform offset in ``[0, 2 * padding]`` per axis, then mirrored left-right with
    probability 0.5. The default pad value -1 is a black pixel in the [-1, 1] range, i.e. the
    usual zero padding applied before normalisation. Randomness comes only from ``generator``
    (drawn on its device), so a seeded generator gives reproducible results. Vectorised via gather.
    """
    n, c, h, w = x.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=generator.device)
    flip = torch.rand(n, generator=generator, device=generator.device) < 0.5
    offsets, flip = offsets.to(x.device), flip.to(x.device)
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    padded = F.pad(x, (padding,) * 4, value=pad_value)
    cropped = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * padding))
    return cropped.gather(3, cols[:, None, None, :].expand(n, c, h, w))
