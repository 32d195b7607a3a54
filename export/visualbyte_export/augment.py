"""Train-time augmentation of a batch (photos, rendered text, log-mel speech pictures) and the
uint8 → normalised input conversion it happens in."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .model import IMAGENET_MEAN, IMAGENET_STD


def _affine(x: torch.Tensor, sx, sy, tx, ty, rot=None, shear=None) -> torch.Tensor:
    """Resample ``x`` through the per-sample affine map (output grid → input): scale, then
    rotation, plus a horizontal ``shear`` (input x += shear · output y, so letters lean)."""
    n = x.shape[0]
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    if rot is None:
        theta[:, 0, 0], theta[:, 1, 1] = sx, sy
    else:
        c, s = torch.cos(rot), torch.sin(rot)
        theta[:, 0, 0], theta[:, 0, 1] = sx * c, -sx * s
        theta[:, 1, 0], theta[:, 1, 1] = sy * s, sy * c
    if shear is not None:
        theta[:, 0, 1] = theta[:, 0, 1] + shear * theta[:, 1, 1]
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _u(n, lo, hi, g, device):
    return (
        torch.empty(n, device=device).uniform_(lo, hi, generator=g)
        if g is not None
        else (torch.empty(n, device=device).uniform_(lo, hi))
    )


def _blur(x: torch.Tensor, sigma: torch.Tensor, axis: int, radius: int = 3) -> torch.Tensor:
    """Gaussian blur of each picture along ``axis`` (2: down the rows, 3: along them), ``sigma``
    pixels per picture (~0 gives the identity tap); edges replicated."""
    n, c, h, w = x.shape
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype).view(1, -1)
    k = torch.exp(-0.5 * (taps / sigma.clamp_min(1e-3).view(n, 1)) ** 2)
    k = (k / k.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)
    if axis == 2:
        pad, shape = (0, 0, radius, radius), (n * c, 1, -1, 1)
    else:
        pad, shape = (radius, radius, 0, 0), (n * c, 1, 1, -1)
    flat = F.pad(x.reshape(1, n * c, h, w), pad, mode="replicate")
    return F.conv2d(flat, k.view(shape), groups=n * c).reshape(n, c, h, w)


def _style(x: torch.Tensor, s: float, g, dev) -> torch.Tensor:
    """Drawing-style changes on photos and emoji, so that a style the network never saw (a held-out
    emoji vendor, a camera) still reads: blur that softens outlines and flat fills, gamma, a mild
    colour cast, and grey pictures. Colours keep their hue (a red apple stays red)."""
    n = x.shape[0]
    sigma = _u(n, 0, 1.2 * s, g, dev)  # pixels at the input size
    x = _blur(_blur(x, sigma, axis=3), sigma, axis=2)
    gamma = torch.exp(_u(n, -0.4 * s, 0.4 * s, g, dev)).view(n, 1, 1, 1)
    x = x.clamp(0, 1) ** gamma
    cast = 1 + torch.empty(n, 3, 1, 1, device=dev).uniform_(-0.1 * s, 0.1 * s, generator=g)
    x = x * cast
    grey = (_u(n, 0, 1, g, dev) < 0.1 * s).view(n, 1, 1, 1)
    return torch.where(grey, x.mean(dim=1, keepdim=True).expand_as(x), x)


def _stroke_weight(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Bolder (``w`` > 0) or lighter (``w`` < 0) dark-on-light strokes, as another font weight
    would draw them: a blend, by ``|w|`` (≤ 1), toward the 3×3 minimum (ink spreads one pixel)
    or the 3×3 maximum (ink shrinks one pixel)."""
    bolder = -F.max_pool2d(-x, 3, stride=1, padding=1)
    lighter = F.max_pool2d(x, 3, stride=1, padding=1)
    w = w.view(-1, 1, 1, 1)
    target = torch.where(w > 0, bolder, lighter)
    return x + (target - x) * w.abs().clamp(max=1)


def _voice(x: torch.Tensor, v: float, g, dev) -> torch.Tensor:
    """Another speaker or synthesizer, drawn on the log-mel picture (low frequencies in the bottom
    row, time from the left): the frequency axis stretched or squeezed about its low end by up to
    ±12 % (formants and pitch move, as with another vocal tract), the tempo by up to ±15 % about
    the start, a smooth random EQ (tilt and one ripple, up to ~±5 dB at 80 dB per unit) on what
    is above the floor, and smoothing across frequency (blurred harmonics, as a coarser vocoder
    draws them)."""
    n, s = x.shape[0], x.shape[-1]
    alpha = torch.exp(_u(n, -0.12 * v, 0.12 * v, g, dev))
    tempo = torch.exp(_u(n, -0.15 * v, 0.15 * v, g, dev))
    # Output → input: y_in = y / alpha + (1 - 1/alpha) keeps the bottom row (y = 1) in place;
    # x_in = tempo · x + (tempo - 1) keeps the first column (x = -1).
    x = _affine(x, tempo, 1 / alpha, tempo - 1, 1 - 1 / alpha)
    pos = torch.linspace(-1, 1, s, device=dev).view(1, s)
    tilt = _u(n, -0.06 * v, 0.06 * v, g, dev).view(n, 1)
    ripple = _u(n, -0.04 * v, 0.04 * v, g, dev).view(n, 1)
    cycles = _u(n, 0.5, 2.0, g, dev).view(n, 1)
    phase = _u(n, 0, 6.2832, g, dev).view(n, 1)
    curve = tilt * pos + ripple * torch.sin(3.1416 * cycles * pos + phase)
    x = x + curve.view(n, 1, s, 1) * (x > 0.02).to(x.dtype)
    x = _blur(x.clamp(0, 1), _u(n, 0, 1.0 * v, g, dev), axis=2)
    return x.clamp(0, 1)


def augment(
    x: torch.Tensor,
    modality: str,
    strength: float = 1.0,
    generator=None,
    style: float = 0.0,
    voice: float = 0.0,
) -> torch.Tensor:
    """Random train-time changes on a float ``[B, 3, S, S]`` batch in [0, 1] (before
    normalisation). ``style`` (photos only, applied at any ``strength``) adds drawing-style
    changes (:func:`_style`); ``voice`` (speech only, at any ``strength``) other-speaker and
    other-synthesizer changes (:func:`_voice`)."""
    n, dev, g = x.shape[0], x.device, generator
    if modality == "image" and style > 0:
        x = _style(x, style, g, dev).clamp(0, 1)
    if modality == "audio" and voice > 0:
        x = _voice(x, voice, g, dev)
    if strength <= 0:
        return x
    s = strength
    if modality == "image":
        zoom = _u(n, 1 - 0.35 * s, 1.0, g, dev)  # grid scale < 1 = crop of 65..100 % of the side
        aspect = torch.exp(_u(n, -0.15 * s, 0.15 * s, g, dev))
        flip = torch.where(_u(n, 0, 1, g, dev) < 0.5, -1.0, 1.0)
        sx, sy = zoom * aspect.sqrt() * flip, zoom / aspect.sqrt()
        tx, ty = (1 - zoom) * _u(n, -1, 1, g, dev), (1 - zoom) * _u(n, -1, 1, g, dev)
        x = _affine(x, sx, sy, tx, ty)
        b = _u(n, -0.25 * s, 0.25 * s, g, dev).view(n, 1, 1, 1)
        c = _u(n, 1 - 0.3 * s, 1 + 0.3 * s, g, dev).view(n, 1, 1, 1)
        sat = _u(n, 1 - 0.4 * s, 1 + 0.4 * s, g, dev).view(n, 1, 1, 1)
        grey = x.mean(dim=1, keepdim=True)
        x = grey + (x - grey) * sat
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * c + mean + b
    elif modality == "text":
        zoom = _u(n, 1 - 0.1 * s, 1 + 0.25 * s, g, dev)  # > 1 shrinks the word
        tx, ty = _u(n, -0.12 * s, 0.12 * s, g, dev), _u(n, -0.12 * s, 0.12 * s, g, dev)
        rot = _u(n, -0.07 * s, 0.07 * s, g, dev)
        shear = _u(n, -0.25 * s, 0.25 * s, g, dev)  # slanted (italic-like) letters
        x = _affine(x, zoom, zoom, tx, ty, rot, shear)
        x = _stroke_weight(x, _u(n, -0.5 * s, 0.8 * s, g, dev))
    elif modality == "audio":
        # Time only: shift and slight stretch; frequency rows keep their meaning.
        sx = _u(n, 1 - 0.1 * s, 1 + 0.1 * s, g, dev)
        tx = _u(n, -0.1 * s, 0.1 * s, g, dev)
        x = _affine(x, sx, torch.ones(n, device=dev), tx, torch.zeros(n, device=dev))
        S = x.shape[-1]
        fill = x.amin(dim=(1, 2, 3), keepdim=True)
        rows = torch.arange(S, device=dev).view(1, S)
        for axis in (2, 3):  # one frequency band and one time band, each on half the clips
            width = (_u(n, 0, 0.12 * s, g, dev) * S).long().view(n, 1)
            start = (_u(n, 0, 1, g, dev) * S).long().view(n, 1)
            on = (_u(n, 0, 1, g, dev) < 0.5).view(n, 1)
            band = ((rows >= start) & (rows < start + width) & on).to(x.dtype)
            band = band.view(n, 1, S, 1) if axis == 2 else band.view(n, 1, 1, S)
            x = x * (1 - band) + fill * band
    else:
        raise ValueError(modality)
    return x.clamp(0, 1)


def to_input(
    pixels: torch.Tensor,
    modality: str | None,
    aug_strength: float,
    device,
    style: float = 0.0,
    voice: float = 0.0,
) -> torch.Tensor:
    """uint8 NHWC → (augmented) normalised float NCHW, as CONTRACT.md."""
    x = pixels.to(device).permute(0, 3, 1, 2).float() / 255.0
    if modality is not None and (aug_strength > 0 or style > 0 or voice > 0):
        x = augment(x, modality, aug_strength, style=style, voice=voice)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std
