import numpy as np
import pytest
import soundfile as sf

from magnet_eval.audio import (check_finite, fit_length, load_audio, loudness_db, loudness_normalize, resample,
                               save_audio, to_mono)
from magnet_eval.errors import AudioError

from helpers import sine


def test_round_trip_and_resample_on_read(tmp_path):
    x = sine(44100, 1.0)
    path = save_audio(tmp_path / "a.wav", np.stack([x, 0.5 * x]), 44100)
    stereo, sr = load_audio(path, mono=False)
    assert sr == 44100 and stereo.shape == (2, 44100)
    mono, sr = load_audio(path, sr=16000)
    assert sr == 16000 and mono.shape == (16000,)
    # the downmix is the channel mean, and resampling keeps a 440 Hz tone at 440 Hz
    spectrum = np.abs(np.fft.rfft(mono))
    assert abs(np.argmax(spectrum) * 16000 / len(mono) - 440) < 2
    assert np.isclose(np.abs(mono).max(), 0.75 * 0.3, rtol=0.02)


def test_wrong_rate_is_resampled_not_misread(tmp_path):
    sf.write(tmp_path / "b.wav", sine(8000, 2.0), 8000)
    wav, sr = load_audio(tmp_path / "b.wav", sr=32000)
    assert sr == 32000 and len(wav) == 64000


@pytest.mark.parametrize("content,message", [
    (b"", "empty"),
    (b"RIFF\x00\x00garbage-not-a-wav-file" * 4, "cannot decode"),
])
def test_bad_files(tmp_path, content, message):
    p = tmp_path / "bad.wav"
    p.write_bytes(content)
    with pytest.raises(AudioError, match=message):
        load_audio(p)


def test_missing_and_zero_length_and_nan(tmp_path):
    with pytest.raises(AudioError, match="does not exist"):
        load_audio(tmp_path / "nope.wav")
    sf.write(tmp_path / "zero.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="empty"):
        load_audio(tmp_path / "zero.wav")
    x = sine(16000, 1.0)
    x[100] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(tmp_path / "nan.wav")
    with pytest.raises(AudioError, match="NaN"):
        save_audio(tmp_path / "out.wav", x, 16000)
    assert not (tmp_path / "out.wav").exists()


def test_loudness_normalize_reaches_headroom():
    sr = 32000
    for amp in (0.05, 0.5):
        y = loudness_normalize(sine(sr, 3.0, amp=amp), sr, headroom_db=14.0)
        assert abs(loudness_db(y, sr) - (-14.0)) < 0.05
    silent = np.zeros(sr, dtype=np.float32) + 1e-5
    assert np.array_equal(loudness_normalize(silent, sr), silent)


def test_helpers():
    assert to_mono(np.ones((2, 5))).shape == (5,)
    assert fit_length(np.ones(5), 8).tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    assert fit_length(np.ones((2, 5)), 3).shape == (2, 3)
    assert resample(np.ones(100, dtype=np.float32), 100, 100).shape == (100,)
    with pytest.raises(AudioError):
        check_finite(np.array([np.inf]), "x")


def test_truncated_wav_is_detected_not_read_short(tmp_path):
    """libsndfile clamps the frame count of a cut-off wav; the header's promise is compared with the file."""
    path = save_audio(tmp_path / "full.wav", sine(16000, 1.0), 16000)
    data = path.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    assert sf.info(str(cut)).frames < 16000  # soundfile alone would hand back half the clip silently
    with pytest.raises(AudioError, match="cut.wav: damaged wav: header promises 32000 bytes"):
        load_audio(cut)
    # an odd-sized chunk before `data` (padded to even) is walked correctly: the full file still loads
    assert load_audio(path)[0].shape == (16000,)


def test_folder_or_unreadable_where_audio_is_expected(tmp_path):
    (tmp_path / "x.wav").mkdir()
    with pytest.raises(AudioError, match="x.wav: is a folder, where an audio file was expected"):
        load_audio(tmp_path / "x.wav")
