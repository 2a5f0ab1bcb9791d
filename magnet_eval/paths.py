"""Where things live: the toolkit cache, the Hugging Face and torch hub caches, and the lookup of weight files.

Every loader of pretrained weights goes through `find_weights` so that a missing file always
produces the same kind of message: which file, which places were searched, where to put it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from .errors import MissingWeightsError


def cache_dir() -> Path:
    """The toolkit's own cache (embeddings, converted weights, fetched wheels, trained tiny models)."""
    root = os.environ.get("MAGNET_EVAL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "magnet-eval")
    return Path(root)


def hf_hub_dir() -> Path:
    """The Hugging Face hub cache, honouring HF_HUB_CACHE and HF_HOME like huggingface_hub does."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(hf_home) / "hub"


def torch_hub_dir() -> Path:
    """The torch hub cache (TORCH_HOME/hub), where torchvggish and PANNs weights are usually found."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "torch")
    return Path(torch_home) / "hub"


def hf_repo_dir(repo_id: str) -> Path:
    """The hub-layout folder of one repository: `models--{org}--{name}`."""
    return hf_hub_dir() / ("models--" + repo_id.replace("/", "--"))


def find_hf_file(repo_id: str, filename: str) -> Path | None:
    """A file of a hub repository in the local cache (the snapshot `refs/main` points at first), or None."""
    repo = hf_repo_dir(repo_id)
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo / "refs" / "main"
    if ref.is_file():
        candidate = snapshots / ref.read_text().strip() / filename
        if candidate.exists():
            return candidate
    for snap in sorted(snapshots.iterdir()):
        candidate = snap / filename
        if candidate.exists():
            return candidate
    return None


def find_weights(
    what: str,
    candidates: Sequence[Path | str | None],
    *,
    put_here: Path | str,
    source: str,
    extra: Iterable[str] = (),
) -> Path:
    """Return the first existing candidate path, or raise MissingWeightsError naming the file.

    what: a human name ("VGGish weights vggish-10086976.pth"); put_here: the path a user should
    place the file at; source: where the official file is published.
    """
    searched = [Path(c) for c in candidates if c]
    for path in searched:
        if path.exists():
            return path
    lines = [f"{what} not found on this machine (no download is attempted: runs are offline)."]
    if searched:
        lines.append("Searched:")
        lines += [f"  - {p}" for p in searched]
    lines.append(f"Put the file at: {put_here}")
    lines.append(f"Official source: {source}")
    lines += list(extra)
    raise MissingWeightsError("\n".join(lines))
