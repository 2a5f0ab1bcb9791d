"""Pairing generated clips with reference clips by prompt id, done once per evaluation.

Paired metrics (KL, chroma cosine, CLAP's captions) compare a generated clip with the reference
clip of the same prompt id, never by listing order. The pairing lives here, outside the metrics,
so that a metric only ever receives arrays that are already paired.
"""

from __future__ import annotations

from .errors import ManifestError
from .manifest import Manifest
from .progress import warn


def _show(ids: list[str]) -> str:
    if not ids:
        return "none"
    return ", ".join(ids[:20]) + (f" ... ({len(ids)} in all)" if len(ids) > 20 else "")


def pair_ids(generated: Manifest, reference: Manifest, *, strict: bool = False, what: str = "paired metrics") -> list[str]:
    """Generated ids that have reference audio, in generated order.

    A generated id without reference audio is a ManifestError listing the ids (the metric would
    silently measure a subset otherwise); reference ids with no generated clip are a warning, or
    an error with `strict`.
    """
    ref_ok = {e.id for e in reference.with_audio()}
    gen_ids = generated.ids()
    missing_ref = [i for i in gen_ids if i not in ref_ok]
    gen_set = set(gen_ids)
    missing_gen = [i for i in reference.ids() if i not in gen_set and i in ref_ok]
    if missing_ref or (strict and missing_gen):
        raise ManifestError(
            f"{what} pair generated and reference clips by prompt id, and the ids do not match:\n"
            f"  generated ids without reference audio: {_show(missing_ref)}\n"
            f"  reference ids without a generated clip: {_show(missing_gen)}"
        )
    if missing_gen:
        warn(f"{len(missing_gen)} reference clips have no generated counterpart and are not used by {what}")
    return gen_ids


__all__ = ["pair_ids"]
