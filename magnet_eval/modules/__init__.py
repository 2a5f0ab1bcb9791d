"""Building blocks: the transformer, codebook patterns, text conditioners."""
