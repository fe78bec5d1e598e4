"""Multi-domain balls images (docs/design.md, Data): a vectorised headless renderer and the latent sampler.

Coordinates: a ball's latent is its centre (x, y) in [0, 1]^2, x along image columns (left to
right) and y along image rows (top to bottom). z = invariant balls' (x, y) first, then spurious.
Images are rendered in numpy for many images at once: per ball, the distance of every pixel centre
to the ball centre, turned into an anti-aliased coverage clip(r - d + 1/2, 0, 1) (in pixels), and
composited over a white background in ball order. No SDL/pygame, no display.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mdcrl.data.base import SPLITS, MultiDomainData, Split
from mdcrl.data.image_cache import cache_settings, read_image_cache, save_image_cache
from mdcrl.data.mixing import domain_labels
from mdcrl.errors import BallsDataError

log = logging.getLogger(__name__)

# One fixed RGB colour per ball index (invariant balls first), in [0, 1].
BALL_COLOURS = np.array(
    [
        [0.12, 0.47, 0.71],
        [1.0, 0.5, 0.05],
        [0.17, 0.63, 0.17],
        [0.84, 0.15, 0.16],
        [0.58, 0.4, 0.74],
        [0.55, 0.34, 0.29],
        [0.89, 0.47, 0.76],
        [0.5, 0.5, 0.5],
    ]
)
MAX_PLACEMENT_ROUNDS = 1000
CACHE_FORMAT = "mdcrl-balls-v1"


def coverage(centres: np.ndarray, radius: float, size: int) -> np.ndarray:
    """(n, balls, size, size) anti-aliased disc coverage in [0, 1] for centres (n, balls, 2)."""
    pixel = np.arange(size, dtype=np.float32) + 0.5  # pixel centres, in pixels
    c = centres.astype(np.float32) * size
    dx2 = (pixel[None, None, :] - c[:, :, 0:1]) ** 2  # (n, balls, W)
    dy2 = (pixel[None, None, :] - c[:, :, 1:2]) ** 2  # (n, balls, H)
    dist = np.sqrt(dy2[:, :, :, None] + dx2[:, :, None, :])
    return np.clip(radius * size - dist + 0.5, 0.0, 1.0)


def render(centres: np.ndarray, radius: float, size: int = 64, chunk: int = 1024, with_masks: bool = False):
    """uint8 images (n, 3, size, size) of the balls on white (and boolean per-ball masks
    (n, balls, size, size), coverage > 1/2, when ``with_masks``)."""
    n, balls, _ = centres.shape
    colours = BALL_COLOURS[:balls].astype(np.float32)
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    masks = np.empty((n, balls, size, size), dtype=bool) if with_masks else None
    for start in range(0, n, chunk):
        cov = coverage(centres[start : start + chunk], radius, size)
        img = np.ones((len(cov), 3, size, size), dtype=np.float32)
        for b in range(balls):
            a = cov[:, b][:, None]
            img = img * (1.0 - a) + colours[b][None, :, None, None] * a
        images[start : start + chunk] = np.round(img * 255.0).astype(np.uint8)
        if with_masks:
            masks[start : start + chunk] = cov > 0.5
    return (images, masks) if with_masks else images


def images_to_unit_range(images: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [-1, 1]."""
    return images.astype(np.float32) / 127.5 - 1.0


def sample_spurious_ball_boxes(rng: np.random.Generator, num_domains: int, size_range) -> np.ndarray:
    """(k, 2) [low, high] per domain: the spurious balls' box is [low, high]^2 inside [0, 1]."""
    side = rng.uniform(size_range[0], size_range[1], size=num_domains)
    low = rng.uniform(0.0, 1.0 - side)
    return np.stack([low, low + side], axis=1)


def _overlapping(centres: np.ndarray, radius: float) -> np.ndarray:
    """Rows in which some pair of balls is closer than 2r."""
    diff = centres[:, :, None, :] - centres[:, None, :, :]
    dist = np.sqrt((diff**2).sum(-1))
    balls = centres.shape[1]
    dist[:, np.arange(balls), np.arange(balls)] = np.inf
    return (dist < 2 * radius).any(axis=(1, 2))


OVERLAP_REDRAWS = ("all", "spurious")  # datamodule.dataset.overlap_redraw
# overlap_redraw=spurious: a row whose spurious balls still cannot avoid its invariant ones after
# this many rounds (its domain's box is covered by them) is redrawn whole, as overlap_redraw=all does.
SPURIOUS_ONLY_ROUNDS = 100


def sample_ball_latents(rng: np.random.Generator, domain: np.ndarray, ds, boxes: np.ndarray) -> np.ndarray:
    """(n, 2 * balls) centres, invariant balls first; rows with overlapping balls are redrawn.

    overlap_redraw=all redraws every ball of such a row. The invariant ball then avoids each domain's
    spurious box a little, so z_S is not distributed quite the same in every domain (measured:
    scripts/balls_invariance_check.py). overlap_redraw=spurious keeps the invariant balls and redraws
    only the spurious ones (the invariant balls among themselves are redrawn alike in every domain),
    so z_U avoids z_S by the same rule in every domain; z_S is exactly invariant only where every
    domain's box leaves room for a spurious ball beside any invariant one, since a row still
    overlapping after SPURIOUS_ONLY_ROUNDS is redrawn whole (measured on the preset's geometry: the
    true z_S's MMD across domains roughly halves, docs/results/balls/README.md)."""
    r = float(ds.ball_size)
    n_inv, n_sp = int(ds.n_balls_invariant), int(ds.n_balls_spurious)
    keep_invariant = ds.get("overlap_redraw", "all") == "spurious"
    inv_low = np.asarray(ds.invariant_low, dtype=float) + r
    inv_high = np.asarray(ds.invariant_high, dtype=float) - r
    n = len(domain)
    centres = np.empty((n, n_inv + n_sp, 2))
    todo = np.arange(n)
    for round_ in range(MAX_PLACEMENT_ROUNDS):
        m = len(todo)
        if keep_invariant and 0 < round_ < SPURIOUS_ONLY_ROUNDS:
            inv = centres[todo, :n_inv].copy()
            clash = _overlapping(inv, r)  # invariant balls among themselves (never, with one)
            inv[clash] = rng.uniform(inv_low, inv_high, size=(int(clash.sum()), n_inv, 2))
        else:
            inv = rng.uniform(inv_low, inv_high, size=(m, n_inv, 2))
        low, high = boxes[domain[todo], 0] + r, boxes[domain[todo], 1] - r
        sp = low[:, None, None] + (high - low)[:, None, None] * rng.uniform(size=(m, n_sp, 2))
        if ds.correlated_z:
            # Dynamic SCM: with probability p, spurious ball j moves by 0.2 x invariant ball (j mod n_inv)'s
            # position, clipped to stay in the frame; overlapping results are redrawn below.
            shift = rng.binomial(1, float(ds.corr_prob), size=(m, n_sp, 1)) * 0.2 * inv[:, np.arange(n_sp) % n_inv]
            sp = np.clip(sp + shift, r, 1 - r)
        centres[todo] = np.concatenate([inv, sp], axis=1)
        todo = todo[_overlapping(centres[todo], r)]
        if len(todo) == 0:
            return centres.reshape(n, -1)
    raise BallsDataError(
        f"could not place the balls without overlap for {len(todo)} samples after {MAX_PLACEMENT_ROUNDS} rounds: "
        "the invariant range and the domain boxes are too crowded for datamodule.dataset.ball_size; "
        "enlarge them or use smaller balls."
    )


def box_side_for_exact_invariance(ball_size: float) -> float:
    """The smallest spurious box side that leaves a spurious ball room beside any invariant one.

    The spurious centres lie in the box shrunk by r, a square of side s - 2r; the invariant ball rules
    out a disc of radius 2r around its centre, which covers that square whenever its half-diagonal
    (s - 2r) / sqrt(2) is at most 2r. So s > 2r (1 + sqrt(2)) always leaves room, and with
    overlap_redraw=spurious no row is then redrawn whole: z_S is exactly invariant."""
    return 2 * ball_size * (1 + np.sqrt(2))


def balls_settings(ds, seed: int) -> dict:
    return cache_settings(CACHE_FORMAT, ds, seed)


def generate_balls_data(ds, seed: int) -> MultiDomainData:
    rng = np.random.default_rng(seed)
    k = int(ds.num_domains)
    boxes = sample_spurious_ball_boxes(rng, k, ds.domain_box_size)
    exact_side = box_side_for_exact_invariance(float(ds.ball_size))
    if ds.get("overlap_redraw", "all") == "spurious" and int(ds.n_balls_spurious) == 1 and min(ds.domain_box_size) <= exact_side:
        log.warning(
            "overlap_redraw=spurious: domain boxes narrower than %.3f can be covered by the invariant ball, and such "
            "rows are redrawn whole, so z_S is only nearly invariant; datamodule.dataset.domain_box_size=[%.2f,...] "
            "makes it exact.",
            exact_side,
            np.ceil(exact_side * 100) / 100,
        )
    splits = {}
    for name in SPLITS:
        domain = domain_labels(int(ds.num_samples[name]), k)
        z = sample_ball_latents(rng, domain, ds, boxes)
        images = render(z.reshape(len(z), -1, 2), float(ds.ball_size), int(ds.image_size))
        splits[name] = Split(images, z.astype(np.float32), domain)
    metadata = {"kind": "balls", "domain_boxes": boxes.tolist()}
    return MultiDomainData(splits, k, 2 * int(ds.n_balls_invariant), metadata)


def save_balls_cache(data: MultiDomainData, directory: Path, settings: dict) -> None:
    """Write the splits (npz, no pickles) and settings.json (with checksums, written last).
    Refuses to replace a cache made with other settings."""
    save_image_cache(data.splits, directory, settings, "balls", BallsDataError)


def load_balls_cache(directory: Path, settings: dict) -> MultiDomainData:
    """The cached splits; refused unless they were made with exactly ``settings``."""
    saved, splits = read_image_cache(directory, "balls", BallsDataError)
    if saved != settings:
        differing = sorted(
            k for k in set(saved["dataset"]) | set(settings["dataset"]) if saved["dataset"].get(k) != settings["dataset"].get(k)
        )
        if saved.get("seed") != settings["seed"]:
            differing.append("seed")
        raise BallsDataError(
            f"the cached balls dataset in {directory} was made with other settings ({differing}); "
            "use datamodule.load_dataset=False to generate this one, or another datamodule.data_dir."
        )
    k = int(settings["dataset"]["num_domains"])
    return MultiDomainData(splits, k, 2 * int(settings["dataset"]["n_balls_invariant"]), {"kind": "balls"})
