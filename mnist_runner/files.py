"""Files written whole or not at all: a reader (or a kill) never sees a half-written one.

Torch-free, so `compare` and the sweep summary use it as well as the run itself.
"""

import json
import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: Path):
    """Yield a temporary path beside `path`; once the body has written it, sync it and rename it over `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    yield tmp
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_atomic(path: Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n")
