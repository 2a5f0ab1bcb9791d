"""`python -m magnet_eval.embedders [list|convert|tags FILE...]`: what is installed, musicnn conversion, a quick tagger.

- list: every embedder and classifier, its rate and width, and whether its default weights are
  on this machine (nothing is loaded);
- convert: convert the musicnn TF checkpoints of the cached wheel to torch once;
- tags FILE...: musicnn's top tags of audio files (a sanity check of the converted model).
"""

from __future__ import annotations

import sys


def _list() -> int:
    from .registry import EMBEDDERS

    print(f"{'embedder':<12} {'rate':>6} {'dim':>5}  {'weights':<9} description")
    for info in EMBEDDERS.values():
        found = info.find_weights() if info.probe else None
        status = "found" if found else ("-" if info.probe is None else "missing")
        dim = str(info.dim) if info.dim else "?"
        print(f"{info.name:<12} {info.sample_rate:>6} {dim:>5}  {status:<9} {info.description}")
        print(f"{'':<12} {'':>6} {'':>5}  {'':<9} weights: {found or info.weights}")
    from .classifiers import CLASSIFIERS, PASST_MODELS

    print()
    print(f"{'classifier':<12} description")
    for name, desc in CLASSIFIERS.items():
        where = ""
        if name in PASST_MODELS:
            from .classifiers import PasstClassifier

            p = PasstClassifier(name).default_path()
            where = f"  [{'found' if p.exists() else 'missing'}: {p}]"
        print(f"{name:<12} {desc}{where}")
    return 0


def _convert() -> int:
    from .musicnn import convert_all

    for path in convert_all():
        print(path)
    return 0


def _tags(files: list[str]) -> int:
    from ..audio import load_audio
    from .musicnn import MusicnnEmbedder

    emb = MusicnnEmbedder().load()
    for f in files:
        wav, sr = load_audio(f)
        tags = ", ".join(f"{t} {p:.2f}" for t, p in emb.top_tags(wav, sr, k=5))
        print(f"{f}: {tags}")
    return 0


def main(argv: list[str]) -> int:
    from ..errors import MagnetEvalError

    cmd = argv[0] if argv else "list"
    try:
        if cmd == "list":
            return _list()
        if cmd == "convert":
            return _convert()
        if cmd == "tags" and len(argv) > 1:
            return _tags(argv[1:])
    except MagnetEvalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("usage: python -m magnet_eval.embedders [list | convert | tags FILE...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
