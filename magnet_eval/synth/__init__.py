"""The offline text-to-music corpus: composed multi-track pieces rendered with FluidSynth, with captions and stems.

theory (keys, chords, voicings) -> genres (what each genre is made of) -> composer (a
score.Piece whose parts are written by drums / bass / comping / melody and played through
performance) -> midi (mido files) -> render (fluidsynth) -> captions ->
corpus (the parallel, resumable driver that writes wavs, stems and the manifest).
The package imports nothing heavy; `from magnet_eval.synth.corpus import build_corpus`.
"""
