"""IDX files (LeCun's MNIST format): a header check that names what is wrong, a reader and a writer.

`read_idx` returns the array a file holds, as torchvision's own reader would (the same bytes, in
native byte order), after `idx_problem` has checked its header against its size: a file that is not
IDX at all (for example an HTML page saved by a failed download), or whose header announces more
or fewer bytes than the file holds (truncated or padded), is refused with a sentence saying so.
Torch-free: numpy only.
"""

import math
import struct
from pathlib import Path

import numpy as np

# IDX type code -> element type (unsigned byte, signed byte, short, int, float, double), big-endian
DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IdxError(ValueError):
    """An IDX file that cannot be read; the message says why."""


def _header(f) -> tuple[int, tuple[int, ...]] | str:
    """(type code, shape) from an open file at its start, or what is wrong with the header."""
    head = f.read(4)
    if len(head) < 4:
        return "it holds fewer bytes than an IDX header"
    zero, code, ndim = struct.unpack(">HBB", head)
    if zero != 0 or code not in DTYPES or not 1 <= ndim <= 4:
        return (
            f"it is not an IDX file (magic number 0x{head.hex()}; IDX starts with 0x0000, a type code and 1-4 "
            "dimensions)"
        )
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        return "it is truncated inside its header"
    return code, struct.unpack(f">{ndim}I", dims)


def idx_problem(path: Path) -> str | None:
    """What is wrong with the IDX file at `path`, or None when its header and size agree."""
    size = Path(path).stat().st_size
    with open(path, "rb") as f:
        header = _header(f)
    if isinstance(header, str):
        return f"{header} ({size} bytes)"
    code, shape = header
    expected = 4 + 4 * len(shape) + math.prod(shape) * np.dtype(DTYPES[code]).itemsize
    if size != expected:
        how = "truncated" if size < expected else "longer than its header says"
        return f"it is {how}: {size} bytes, but its header (shape {list(shape)}) needs {expected}"
    return None


def read_idx(path: Path) -> np.ndarray:
    """The array in the IDX file at `path`, in native byte order; IdxError when the file is damaged."""
    problem = idx_problem(path)
    if problem:
        raise IdxError(problem)
    with open(path, "rb") as f:
        code, shape = _header(f)
        dtype = np.dtype(DTYPES[code])
        array = np.fromfile(f, dtype=dtype, count=math.prod(shape)).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write `array` as an IDX file (big-endian, as LeCun's format and torchvision expect), e.g. a small
    dataset in torchvision's layout: ROOT/MNIST/raw/train-images-idx3-ubyte and the three others."""
    code = next(c for c, t in DTYPES.items() if np.dtype(t).newbyteorder("=") == array.dtype.newbyteorder("="))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, code, array.ndim))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.astype(np.dtype(DTYPES[code]), copy=False).tobytes())
