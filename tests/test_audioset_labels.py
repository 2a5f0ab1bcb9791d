"""The AudioSet label list is package data; its order is the classifiers' logit order."""

from magnet_eval.embedders.audioset_labels import AUDIOSET_CLASSES, AUDIOSET_LABELS, load_audioset_classes


def test_audioset_labels_count_order_and_known_entries() -> None:
    assert len(AUDIOSET_CLASSES) == len(AUDIOSET_LABELS) == 527
    assert AUDIOSET_CLASSES[0] == ("/m/09x0r", "Speech")
    assert AUDIOSET_CLASSES[1] == ("/m/05zppz", "Male speech, man speaking")  # a quoted comma survives
    assert AUDIOSET_LABELS[137] == "Music"
    assert AUDIOSET_CLASSES[-1] == ("/m/07hvw1", "Field recording")
    assert len(set(mid for mid, _ in AUDIOSET_CLASSES)) == 527
    assert load_audioset_classes() == AUDIOSET_CLASSES
