"""Fashion-MNIST with a fine (10 classes) and a coarse (4 classes) task, offline from Debian.

The files are the original gzipped IDX files of the Debian package
`dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist): 60,000 train
and 10,000 test 28x28 grayscale images.

Coarse task, derived from the fine label (`COARSE_OF_FINE`):

| coarse   | fine classes                                   |
|----------|------------------------------------------------|
| tops     | T-shirt/top, Pullover, Dress, Coat, Shirt      |
| bottoms  | Trouser                                        |
| footwear | Sandal, Sneaker, Ankle boot                    |
| bags     | Bag                                            |

A dress has no bottoms/tops split of its own; it is a garment hung from the
shoulders like the other four "tops", and in these images it is shaped like
them (a long shirt), so it counts as a top rather than making a fifth,
one-class group.
"""

from __future__ import annotations

import gzip
import os
import struct

import keras
import numpy as np

from keras_mtl import tasks as tasks_lib
from keras_mtl.data import splits as splits_lib
from keras_mtl.data.dataset import MultiTaskData

DATA_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
COARSE_CLASSES = ("tops", "bottoms", "footwear", "bags")
COARSE_OF_FINE = np.array([0, 1, 0, 0, 0, 2, 0, 2, 3, 2], dtype=np.int64)

# IDX type codes (the third byte of the magic number) and their big-endian dtypes.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike, limit: int | None = None) -> np.ndarray:
    """An IDX file (gzipped if it ends in .gz) as a numpy array; only the first `limit` items if given.

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x-idx1-ubyte.gz")
    >>> write_idx(path, np.array([3, 1, 4], dtype=np.uint8))
    >>> read_idx(path).tolist(), read_idx(path, limit=2).tolist()
    ([3, 1, 4], [3, 1])
    """
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        zero, type_code, ndim = struct.unpack(">HBB", f.read(4))
        if zero != 0 or type_code not in _IDX_TYPES or ndim < 1:
            raise ValueError(f"{path} is not an IDX file (magic bytes {zero:#06x} {type_code:#04x} {ndim}).")
        shape = list(struct.unpack(f">{ndim}I", f.read(4 * ndim)))
        if limit is not None:
            shape[0] = min(shape[0], int(limit))
        dtype = np.dtype(_IDX_TYPES[type_code])
        count = int(np.prod(shape))
        data = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype)
    if data.size != count:
        raise ValueError(f"{path} is truncated: expected {count} values, read {data.size}.")
    return data.reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Writes `array` as an IDX file (gzipped if `path` ends in .gz), e.g. to build small test data.

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x-idx3-ubyte")
    >>> write_idx(path, np.zeros((2, 28, 28), np.uint8))
    >>> read_idx(path).shape
    (2, 28, 28)
    """
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_TYPES.items()}
    if array.dtype not in codes or array.ndim < 1:
        raise ValueError(
            f"IDX holds 1-D or larger arrays of {sorted(map(str, codes))}; "
            f"got {array.dtype}, {array.ndim}-D."
        )
    header = struct.pack(">HBB", 0, codes[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(array.dtype.newbyteorder(">")).tobytes())


def read_split(split: str, limit: int | None = None, data_dir: str | None = None) -> tuple[dict, dict]:
    """Images (uint8, (n, 28, 28)) and the fine and coarse labels (int64) of "train" or "test".

    Example:
    >>> features, labels = read_split("test", limit=4)
    >>> features["image"].shape, sorted(labels)
    ((4, 28, 28), ['coarse', 'fine'])
    """
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}, got {split!r}.")
    folder = data_dir or DATA_DIR
    paths = [os.path.join(folder, f) for f in FILES[split]]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(
            f"fashion_mnist() reads the IDX files of the Debian package 'dataset-fashion-mnist'; "
            f"{missing[0]} is missing. Install it with:  sudo apt-get install dataset-fashion-mnist  "
            "(scripts/setup.sh does), or pass data_dir= a folder holding "
            f"{', '.join(f for pair in FILES.values() for f in pair)}."
        )
    images, fine = read_idx(paths[0], limit), read_idx(paths[1], limit).astype(np.int64)
    if len(images) != len(fine) or images.shape[1:] != (28, 28) or fine.max(initial=0) >= len(CLASSES):
        raise ValueError(f"{folder}: the {split} files do not hold Fashion-MNIST images and labels.")
    return {"image": images.astype(np.uint8)}, {"fine": fine, "coarse": COARSE_OF_FINE[fine]}


def fashion_mnist(
    *,
    batch_size: int = 256,
    validation_fraction: float = 0.1,
    limit: int | None = None,
    seed: int = 0,
    data_dir: str | None = None,
) -> MultiTaskData:
    """Fashion-MNIST with two tasks: `fine` (10 clothing classes) and `coarse` (4 groups).

    The train file is split into train/validation by a seeded permutation;
    the test file is the test split. The input is the raw uint8 image,
    shape (28, 28); `keras_mtl.trunks.image()` rescales it inside the model.

    Args:
        batch_size: examples per batch.
        validation_fraction: share of the train file held out.
        limit: read only the first `limit` images of each file (the files
            are not ordered by class).
        seed: seed of the validation split and the shuffling.
        data_dir: folder of the four IDX files (default: the Debian package's).

    Example:
    >>> data = fashion_mnist(limit=100, batch_size=32)
    >>> [t.name for t in data.tasks], data.inputs["image"].shape
    (['fine', 'coarse'], (None, 28, 28))
    """
    columns = splits_lib.with_validation(
        read_split("train", limit, data_dir), read_split("test", limit, data_dir), validation_fraction, seed
    )
    return MultiTaskData.from_splits(
        "fashion_mnist",
        {"image": keras.Input(shape=(28, 28), dtype="uint8", name="image")},
        [
            tasks_lib.Multiclass("fine", num_classes=len(CLASSES)),
            tasks_lib.Multiclass("coarse", num_classes=len(COARSE_CLASSES)),
        ],
        columns,
        batch_size=batch_size,
        seed=seed,
    )
