"""The offline text-to-music corpus: composed multi-track pieces rendered with FluidSynth, with captions and stems.

theory (keys, chords, voicings) -> genres (what each genre is made of) -> composer (a Piece
of drums/bass/chords/lead notes) -> midi (mido files) -> render (fluidsynth) -> captions ->
corpus (the parallel, resumable driver that writes wavs, stems and the manifest).
The package imports nothing heavy; `from magnet_eval.synth.corpus import build_corpus`.
"""
