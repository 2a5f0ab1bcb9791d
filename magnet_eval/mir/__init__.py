"""Music-information-retrieval descriptors (StemGen's 11, for MIRDD), extracted with essentia.

`descriptors` holds the vocabularies and the per-clip extraction; `extract` the per-file
loading (stem + context mix), on-disk cache and the two-process pool; `chroma` audiocraft's
chromagram and its per-file cache (for chroma cosine). These are the feature-extraction side:
the metrics in `metrics/` only receive what they produce. Importing this package does not import
essentia: extraction imports it when it runs.
"""

from .descriptors import DESCRIPTORS, DESCRIPTOR_NAMES, ClipDescriptors, extract_descriptors

__all__ = ["DESCRIPTORS", "DESCRIPTOR_NAMES", "ClipDescriptors", "extract_descriptors"]
