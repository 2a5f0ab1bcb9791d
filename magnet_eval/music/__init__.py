"""The offline text-to-music corpus: composed multi-track pieces rendered with FluidSynth."""
