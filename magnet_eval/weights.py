"""Pretrained weights that ship inside PyPI wheels: fetched once into the cache, never installed.

musicnn (music taggers, TF1 checkpoints) and aisfx (sound-effects embeddings, PyTorch) pin
packages that clash with this stack, so their wheels are downloaded with
`pip download --no-deps` and read as zip files. `python -m magnet_eval.weights fetch-wheels`
is what `make setup` runs.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from .errors import MissingWeightsError
from .paths import cache_dir

# name -> pinned version of the wheels whose weights we read
WHEELS: dict[str, str] = {"musicnn": "0.1.0", "aisfx": "0.1.2"}


def wheels_dir() -> Path:
    return cache_dir() / "wheels"


def wheel_path(name: str) -> Path:
    """The cached wheel of `name`; raises MissingWeightsError with the command that fetches it."""
    version = WHEELS[name]
    found = sorted(wheels_dir().glob(f"{name}-{version}-*.whl"))
    if found:
        return found[0]
    raise MissingWeightsError(
        f"The {name} {version} wheel (it carries the pretrained weights) is not in {wheels_dir()}.\n"
        f"Fetch it with:  python -m magnet_eval.weights fetch-wheels\n"
        f"(or: pip download --no-deps {name}=={version} -d {wheels_dir()})"
    )


def read_from_wheel(name: str, member: str) -> bytes:
    """The bytes of one file inside a cached wheel."""
    with zipfile.ZipFile(wheel_path(name)) as zf:
        try:
            return zf.read(member)
        except KeyError as exc:
            raise MissingWeightsError(f"{member} is not inside {wheel_path(name)}") from exc


def fetch_wheels(names: list[str] | None = None) -> list[Path]:
    """Download the wheels that are not cached yet (needs PyPI; a no-op when all are present)."""
    out = []
    wheels_dir().mkdir(parents=True, exist_ok=True)
    for name in names or list(WHEELS):
        try:
            out.append(wheel_path(name))
            continue
        except MissingWeightsError:
            pass
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
               f"{name}=={WHEELS[name]}", "-d", str(wheels_dir())]
        subprocess.run(cmd, check=True)
        out.append(wheel_path(name))
    return out


if __name__ == "__main__":
    if sys.argv[1:] != ["fetch-wheels"]:
        sys.exit("usage: python -m magnet_eval.weights fetch-wheels")
    for path in fetch_wheels():
        print(path)
