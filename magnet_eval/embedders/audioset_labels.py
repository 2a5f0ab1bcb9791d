"""The 527 AudioSet classes in the order of the AudioSet label index (class_labels_indices.csv).

PaSST / PANNs logits follow this order; (machine id, display name) per class. The list is
package data (magnet_eval/data/audioset_labels.csv, same columns as AudioSet's own index file)
so that the table stays data and the code stays code.
"""

from __future__ import annotations

import csv
import io
from importlib import resources

from ..errors import MagnetEvalError

LABELS_FILE = "audioset_labels.csv"
N_CLASSES = 527


def load_audioset_classes() -> tuple[tuple[str, str], ...]:
    """(machine id, display name) per class, read from the packaged CSV in index order."""
    where = resources.files("magnet_eval") / "data" / LABELS_FILE
    try:
        text = where.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise MagnetEvalError(f"packaged AudioSet label list missing: magnet_eval/data/{LABELS_FILE}") from exc
    rows = list(csv.DictReader(io.StringIO(text)))
    if [r.get("index") for r in rows] != [str(i) for i in range(N_CLASSES)]:
        raise MagnetEvalError(
            f"magnet_eval/data/{LABELS_FILE}: expected {N_CLASSES} rows indexed 0..{N_CLASSES - 1}, got {len(rows)}"
        )
    return tuple((r["mid"], r["display_name"]) for r in rows)


AUDIOSET_CLASSES: tuple[tuple[str, str], ...] = load_audioset_classes()

AUDIOSET_LABELS: tuple[str, ...] = tuple(name for _, name in AUDIOSET_CLASSES)
