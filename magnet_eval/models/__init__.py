"""Models that compose the building blocks: the LMs (MAGNeT, MusicGen), the codec, checkpoints, presets, the generator."""
