"""Unlabeled coloured digits in many domains (the published code's coloured-MNIST experiment).

The digit (its identity and shape) is the stable part: digits are drawn from the same pool in every
domain. The colour is spurious: domain i draws, for each of R, G, B, a range [low_ic, high_ic]
inside [0, 1], and each of its images gets a colour (r, g, b) drawn uniformly from those ranges,
placed by ``spurious_method``:
  digits          the digit's pixels (grey intensity > 0.3) are multiplied by the colour, the
                  background is set to the image's minimum intensity;
  background      the background pixels (intensity <= 0.3) take the colour, the digit stays grey;
  fixed_corner    a 7x7 patch in the top-left corner takes the colour;
  random_corner   a 7x7 patch in one of the four corners (drawn per image) takes the colour.
Dynamic SCM (correlated_z, corr_prob p): with probability p the colour is drawn from the lower half
of each range for digits 0-4 and from the upper half for digits 5-9, else from the whole range.

True latents z = [digit, r, g, b] (the digit first: the stable block has one column). Metrics read
them as a class label and a colour (metrics.digit_colour_metrics), not as regression targets.

Sources of grey digits (datamodule.dataset.path):
  null            the 1797 real 8x8 handwritten digits that scikit-learn ships inside its wheel
                  (sklearn.datasets.load_digits), upsampled to a 20/28 box of the image and centred
                  as MNIST centres its digits: runs on a machine without any file;
  a directory     MNIST as distributed: {train,t10k}-{images-idx3,labels-idx1}-ubyte, gzipped or not;
  an .npz file    arrays ``images`` (n, H, W) uint8 and ``labels`` (n,) in 0..9.
The base images are split 70/15/15 into train/valid/test (held out: no test image is a shifted copy
of a train image). A split that asks for more images than its base holds uses every base image once
and then draws the rest again with a random shift of 1 to ``augment_shift`` pixels (the embedded
digits: about 16 images per base digit at the default 20000 training images).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from mdcrl.data.base import SPLITS, MultiDomainData, Split
from mdcrl.data.image_cache import cache_settings, read_image_cache, save_image_cache
from mdcrl.data.mixing import domain_labels
from mdcrl.errors import MnistDataError
from mdcrl.io import regular_file, sha256_file

SPURIOUS_METHODS = ("digits", "background", "fixed_corner", "random_corner")
DIGIT_THRESHOLD = 0.3  # grey intensity in [0, 1] above which a pixel belongs to the digit
CORNER = 7  # side of the coloured corner patch, in pixels
BASE_FRACTIONS = {"train": 0.70, "valid": 0.15, "test": 0.15}
CACHE_FORMAT = "mdcrl-mnist-v1"
IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SETTING = "datamodule.dataset.path"


# -- grey digits -------------------------------------------------------------------------------
def read_idx(path: Path) -> np.ndarray:
    """An IDX array (the MNIST distribution format), gzipped or not: magic 0x0000, type 0x08
    (unsigned byte), the number of dimensions, each size as a big-endian int32, then the data."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise MnistDataError(f"{SETTING}: {path} is not a readable gzip file ({err}).") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise MnistDataError(f"{SETTING}: {path} is not an IDX file of unsigned bytes (bad magic number {raw[:4].hex()}).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(shape)):
        raise MnistDataError(f"{SETTING}: {path} holds {len(raw) - header} bytes of data, its header says shape {shape}.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _idx_file(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz", directory / "MNIST" / "raw" / name):
        if candidate.is_file():
            return candidate
    return None


def embedded_digits() -> tuple[np.ndarray, np.ndarray, dict]:
    """scikit-learn's 1797 real 8x8 digits (grey levels 0-16), as uint8 0-255."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return images, digits.target.astype(np.int64), {"name": "sklearn-digits", "images": len(images), "side": 8}


def read_digit_source(path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(grey images (n, H, W) uint8, labels (n,) int64, a description with file checksums)."""
    if path in (None, ""):
        return embedded_digits()
    path = Path(str(path)).expanduser()
    files: dict[str, str] = {}
    if path.is_dir():
        images, labels = [], []
        for image_name, label_name in IDX_NAMES.values():
            image_file, label_file = _idx_file(path, image_name), _idx_file(path, label_name)
            if image_file is None or label_file is None:
                continue
            images.append(read_idx(image_file))
            labels.append(read_idx(label_file))
            files.update({image_file.name: sha256_file(image_file), label_file.name: sha256_file(label_file)})
        if not images:
            raise MnistDataError(
                f"{SETTING}={path} holds no MNIST files (train-images-idx3-ubyte and train-labels-idx1-ubyte, "
                "gzipped or not); point it at the folder that holds them, or at an .npz with images and labels."
            )
        if any(i.ndim != 3 for i in images) or any(y.ndim != 1 for y in labels):
            raise MnistDataError(f"{SETTING}={path}: the image files must be 3-D (n, H, W) and the label files 1-D.")
        if len({i.shape[1:] for i in images}) != 1:
            raise MnistDataError(f"{SETTING}={path}: the image files have different image sizes.")
        images, labels = np.concatenate(images), np.concatenate(labels)
    elif path.is_file() and path.suffix == ".npz":
        try:
            with np.load(regular_file(path), allow_pickle=False) as f:
                if "images" not in f or "labels" not in f:
                    raise MnistDataError(f"{SETTING}={path} must hold arrays 'images' and 'labels', it holds {sorted(f)}.")
                images, labels = f["images"], f["labels"]
        except (OSError, ValueError) as err:
            raise MnistDataError(f"{SETTING}={path} is not a readable npz file without pickles ({err}).") from None
        files[path.name] = sha256_file(path)
    else:
        raise MnistDataError(
            f"{SETTING}={path} does not exist or is neither a folder of MNIST idx files nor an .npz file; "
            "fix the path, or leave it null for the embedded digits."
        )
    check_digits(images, labels, path)
    return images, labels.astype(np.int64), {"name": "file", "path": str(path), "images": len(images), "sha256": files}


def check_digits(images: np.ndarray, labels: np.ndarray, path) -> None:
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise MnistDataError(
            f"{SETTING}={path}: images must be uint8 of shape (n, H, W) with H == W, got {images.dtype} {images.shape}."
        )
    if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
        raise MnistDataError(
            f"{SETTING}={path}: labels must be {len(images)} integers (one per image), got {labels.dtype} {labels.shape}."
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise MnistDataError(f"{SETTING}={path}: labels must be digits 0-9, got {labels.min()}..{labels.max()}.")
    if len(images) < 20:
        raise MnistDataError(f"{SETTING}={path} holds {len(images)} images; at least 20 are needed for three splits.")


def fit_to_side(images: np.ndarray, side: int) -> np.ndarray:
    """Grey images resized to (n, side, side) in [0, 1]: already that size: unchanged; else the digit
    is resized (bilinear) to a box of 20/28 of the side and centred, as MNIST places its digits."""
    grey = images.astype(np.float32) / 255.0
    if images.shape[1] == side:
        return grey
    import torch
    import torch.nn.functional as F

    inner = max(1, round(side * 20 / 28))
    resized = F.interpolate(torch.from_numpy(grey)[:, None], size=(inner, inner), mode="bilinear", align_corners=False)
    out = np.zeros((len(images), side, side), dtype=np.float32)
    start = (side - inner) // 2
    out[:, start : start + inner, start : start + inner] = resized[:, 0].clamp(0, 1).numpy()
    return out


def shift_images(grey: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Each image moved by (dy, dx) pixels, zero filled, in one gather (no per-image loop)."""
    n, h, w = grey.shape
    pad = int(max(np.abs(dy).max(initial=0), np.abs(dx).max(initial=0)))
    padded = np.pad(grey, ((0, 0), (pad, pad), (pad, pad)))
    rows = np.arange(h)[None, :] + pad - dy[:, None]
    cols = np.arange(w)[None, :] + pad - dx[:, None]
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def draw_split(rng: np.random.Generator, base: np.ndarray, n: int, max_shift: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indices into the base, dy, dx) of n images: every base image once (shuffled), then, if more
    are needed, random base images again with a shift of 1..max_shift pixels in some direction
    (max_shift 0: unshifted repeats, which still get their own domain and colour)."""
    first = rng.permutation(base)[: min(n, len(base))]
    extra = n - len(first)
    again = rng.choice(base, size=extra)
    shifts = rng.integers(-max_shift, max_shift + 1, size=(extra, 2))
    if max_shift >= 1:  # a shifted copy moves by at least one pixel
        still = (shifts == 0).all(axis=1)
        shifts[still, 0] = rng.choice([-1, 1], size=int(still.sum()))
    dy = np.concatenate([np.zeros(len(first), dtype=np.int64), shifts[:, 0]])
    dx = np.concatenate([np.zeros(len(first), dtype=np.int64), shifts[:, 1]])
    return np.concatenate([first, again]), dy, dx


# -- colour --------------------------------------------------------------------------------------
def colour_ranges(rng: np.random.Generator, num_domains: int) -> np.ndarray:
    """(k, 3, 2): per domain and channel a range [low, high] in [0, 1], low < high."""
    return np.sort(rng.uniform(0.0, 1.0, size=(num_domains, 3, 2)), axis=-1)


def sample_colours(
    rng, domain: np.ndarray, digits: np.ndarray, ranges: np.ndarray, correlated: bool, corr_prob: float
) -> np.ndarray:
    """(n, 3) colours, uniform in each domain's ranges; dynamic SCM: with probability corr_prob from
    the lower half of the ranges for digits 0-4 and the upper half for digits 5-9."""
    low, high = ranges[domain, :, 0], ranges[domain, :, 1]
    if correlated:
        mid = (low + high) / 2
        tied = rng.uniform(size=len(domain)) < corr_prob
        upper = (digits >= 5)[:, None]
        low = np.where(tied[:, None], np.where(upper, mid, low), low)
        high = np.where(tied[:, None], np.where(upper, high, mid), high)
    return low + (high - low) * rng.uniform(size=(len(domain), 3))


def colourise(grey: np.ndarray, colours: np.ndarray, method: str, rng: np.random.Generator) -> np.ndarray:
    """(n, H, W) grey in [0, 1] and (n, 3) colours -> (n, 3, H, W) uint8, vectorised."""
    if method not in SPURIOUS_METHODS:
        raise MnistDataError(f"datamodule.dataset.spurious_method={method!r} is unknown; choose one of {list(SPURIOUS_METHODS)}.")
    n, h, w = grey.shape
    c = colours.astype(np.float32)[:, :, None, None]
    rgb = np.repeat(grey[:, None], 3, axis=1)
    if method == "digits":
        digit = (grey > DIGIT_THRESHOLD)[:, None]
        floor = grey.reshape(n, -1).min(axis=1)[:, None, None, None]
        rgb = np.where(digit, rgb * c, floor)
    elif method == "background":
        rgb = np.where((grey > DIGIT_THRESHOLD)[:, None], rgb, c)
    else:
        corner = np.zeros((n, h, w), dtype=bool)
        which = np.zeros(n, dtype=np.int64) if method == "fixed_corner" else rng.integers(0, 4, size=n)
        rows = np.where(which[:, None] // 2 == 0, np.arange(CORNER)[None], h - CORNER + np.arange(CORNER)[None])
        cols = np.where(which[:, None] % 2 == 0, np.arange(CORNER)[None], w - CORNER + np.arange(CORNER)[None])
        corner[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]] = True
        rgb = np.where(corner[:, None], c, rgb)
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


# -- the dataset ---------------------------------------------------------------------------------
def mnist_settings(ds, seed: int) -> dict:
    return cache_settings(CACHE_FORMAT, ds, seed)


def base_split(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    order = rng.permutation(n)
    n_train, n_valid = int(round(BASE_FRACTIONS["train"] * n)), int(round(BASE_FRACTIONS["valid"] * n))
    return {"train": order[:n_train], "valid": order[n_train : n_train + n_valid], "test": order[n_train + n_valid :]}


def generate_mnist_data(ds, seed: int) -> MultiDomainData:
    images, labels, source = read_digit_source(ds.get("path"))
    side = int(ds.image_size)
    grey_all = fit_to_side(images, side)
    rng = np.random.default_rng(seed)
    k = int(ds.num_domains)
    ranges = colour_ranges(rng, k)
    bases = base_split(rng, len(images))
    splits = {}
    for name in SPLITS:
        domain = domain_labels(int(ds.num_samples[name]), k)  # equal domains: n % k leftover images are dropped
        index, dy, dx = draw_split(rng, bases[name], len(domain), int(ds.augment_shift))
        grey = shift_images(grey_all[index], dy, dx)
        digits = labels[index]
        colours = sample_colours(rng, domain, digits, ranges, bool(ds.correlated_z), float(ds.corr_prob))
        x = colourise(grey, colours, str(ds.spurious_method), rng)
        z = np.concatenate([digits[:, None], colours], axis=1).astype(np.float32)
        splits[name] = Split(x, z, domain)
    metadata = {"kind": "mnist", "source": source, "colour_ranges": ranges.tolist()}
    return MultiDomainData(splits, k, 1, metadata)


def cache_directory(data_dir, run_dir) -> Path:
    """Where the coloured data is cached: datamodule.data_dir, or (null) the run's dataset/ folder.
    A data_dir that is a run directory holding dataset/ means that folder (the seed's second command
    passes the first command's run directory)."""
    if data_dir in (None, ""):
        if run_dir is None:
            raise MnistDataError(
                "datamodule.data_dir=null caches the data in the run directory, which is not known here; set datamodule.data_dir."
            )
        return Path(run_dir) / "dataset"
    directory = Path(str(data_dir)).expanduser()
    return directory / "dataset" if (directory / "dataset" / "settings.json").exists() else directory


def load_mnist_cache(directory: Path, expected: dict) -> MultiDomainData:
    """The cached coloured data. The cache's settings are what the data is: settings given now
    that differ are reported (a warning), not applied, because the seed's second command loads the
    first command's data without repeating its dataset options."""
    import logging

    saved, splits = read_image_cache(directory, "coloured-digits", MnistDataError)
    if saved.get("format") != CACHE_FORMAT:
        raise MnistDataError(
            f"{directory} holds a dataset of format {saved.get('format')!r}, not coloured digits; set datamodule.data_dir."
        )
    differing = sorted(
        k for k in set(saved["dataset"]) | set(expected["dataset"]) if saved["dataset"].get(k) != expected["dataset"].get(k)
    )
    if differing:
        logging.getLogger(__name__).warning(
            "using the cached coloured digits in %s as they were made: %s",
            directory,
            ", ".join(f"{k}={saved['dataset'].get(k)!r} (given {expected['dataset'].get(k)!r})" for k in differing),
        )
    num_domains = int(saved["dataset"]["num_domains"])
    metadata = {"kind": "mnist", "source": saved.get("source"), "loaded_from": str(directory), "dataset": saved["dataset"]}
    return MultiDomainData(splits, num_domains, 1, metadata)


def build_mnist_data(source, seed: int, run_dir=None) -> MultiDomainData:
    """Generate the coloured digits, or load them (load_dataset=True); with save_dataset=True, cache
    what was generated (cache_directory)."""
    expected = mnist_settings(source.dataset, seed)
    if source.load_dataset:
        return load_mnist_cache(cache_directory(source.data_dir, run_dir), expected)
    data = generate_mnist_data(source.dataset, seed)
    if source.save_dataset:
        save_image_cache(
            data.splits,
            cache_directory(source.data_dir, run_dir),
            {**expected, "source": data.metadata["source"]},
            "coloured-digits",
            MnistDataError,
        )
    return data
