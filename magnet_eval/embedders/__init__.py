"""Audio embedders for FAD/KAD/CLAP (fadtk-like registry) and audio classifiers for KL.

    from magnet_eval.embedders import get_embedder
    emb = get_embedder("musicnn").load()          # weights from the cache, or .load(path)
    frames = emb.embed(wav, sr)                   # [frames, emb.dim] float32

Modules import their heavy libraries only when an embedder is built or loaded.
"""

from .base import Embedder
from .registry import EMBEDDERS, EmbedderInfo, get_embedder, list_embedders

__all__ = ["Embedder", "EmbedderInfo", "EMBEDDERS", "get_embedder", "list_embedders"]
