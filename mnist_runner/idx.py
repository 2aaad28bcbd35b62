"""A cheap sanity check of IDX files (LeCun's MNIST format) before torchvision reads them.

torchvision's reader fails on a damaged file with a bare assertion; this names the file and says
what is wrong with it: not IDX at all (for example an HTML page saved by a failed download), or a
header that announces more or fewer bytes than the file holds (truncated or padded).
"""

import math
import struct
from pathlib import Path

# IDX type code -> bytes per element (unsigned byte, signed byte, short, int, float, double)
ELEMENT_SIZE = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}


def idx_problem(path: Path) -> str | None:
    """What is wrong with the IDX file at `path`, or None when its header and size agree."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4)
        if len(head) < 4:
            return f"it holds {size} bytes, fewer than an IDX header"
        zero, code, ndim = struct.unpack(">HBB", head)
        if zero != 0 or code not in ELEMENT_SIZE or not 1 <= ndim <= 4:
            return (
                f"it is not an IDX file (magic number 0x{head.hex()}; "
                f"IDX starts with 0x0000, a type code and 1-4 dimensions)"
            )
        dims = f.read(4 * ndim)
        if len(dims) < 4 * ndim:
            return f"it is truncated inside its header ({size} bytes)"
    shape = struct.unpack(f">{ndim}I", dims)
    expected = 4 + 4 * ndim + math.prod(shape) * ELEMENT_SIZE[code]
    if size != expected:
        how = "truncated" if size < expected else "longer than its header says"
        return f"it is {how}: {size} bytes, but its header (shape {list(shape)}) needs {expected}"
    return None


def check_raw_files(dataset_class, folder: Path, download: bool, error: type[Exception] = ValueError) -> None:
    """Raise `error` naming what is wrong in a dataset's raw folder, before torchvision reads it.

    A file the dataset needs is missing (only said when `download` is off: otherwise torchvision
    fetches it), or an uncompressed IDX file (`*-idx?-*`) is damaged. A folder that does not exist
    is left to the caller's own message.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return
    missing = [name for name in needed_files(dataset_class) if not (folder / name).exists()]
    if missing and not download:
        raise error(
            f"{', '.join(str(folder / name) for name in missing)} {'is' if len(missing) == 1 else 'are'} missing "
            f"and dataset.download=false; put the files there, or point the runner at a folder that holds "
            f"them: dataset.root=PATH or MNIST_RUNNER_DATA=PATH"
        )
    for path in sorted(folder.glob("*-idx[0-9]-*")):
        if path.suffix in (".gz", ".zip", ".tmp"):
            continue
        problem = idx_problem(path)
        if problem:
            raise error(f"{path} cannot be read: {problem}. Delete it to download it again, or replace it")


def needed_files(dataset_class) -> list[str]:
    """The uncompressed files an MNIST-style torchvision class reads (its own `resources` list);
    empty for classes that name their files otherwise (QMNIST, EMNIST)."""
    resources = vars(dataset_class).get("resources")
    if not isinstance(resources, list):
        return []
    return [Path(url).name.removesuffix(".gz") for url, _ in resources]
