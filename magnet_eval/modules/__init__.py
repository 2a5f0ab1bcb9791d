"""Building blocks: the transformer, codebook patterns, text conditioners, spectral codec parts (tiny codec)."""
