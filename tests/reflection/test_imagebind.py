"""ImageBind scorer: our preprocessing against torchaudio's kaldi fbank, the real model classes at a
reduced size through a checkpoint written here, calibration, and the errors a user can cause."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from avagent.errors import BackendError, ParameterError
from avagent.reflection import imagebind_preprocess as pre
from tests.synth import moving_block_av

needs_imagebind = pytest.mark.skipif(
    importlib.util.find_spec("imagebind") is None,
    reason="imagebind-unofficial not installed (make setup installs it --no-deps)",
)

# Every tower at width 32 and one block: the real classes, ~0.1 M parameters.
SMALL = {
    "out_embed_dim": 32, "vision_embed_dim": 32, "vision_num_blocks": 1, "vision_num_heads": 2,
    "audio_embed_dim": 32, "audio_num_blocks": 1, "audio_num_heads": 2,
    "text_embed_dim": 16, "text_num_blocks": 1, "text_num_heads": 2,
    "depth_embed_dim": 16, "depth_num_blocks": 1, "depth_num_heads": 2,
    "thermal_embed_dim": 16, "thermal_num_blocks": 1, "thermal_num_heads": 2,
    "imu_embed_dim": 16, "imu_num_blocks": 1, "imu_num_heads": 2,
}


def _ref_signal() -> np.ndarray:
    """2 s at 16 kHz: a tone, a chirp and integer-LCG noise (identical on every platform)."""
    n = 32000
    t = np.arange(n) / 16000
    lcg = (np.arange(n, dtype=np.uint64) * np.uint64(6364136223846793005)
           + np.uint64(1442695040888963407)) >> np.uint64(40)
    noise = lcg.astype(np.float64) / 2**24 - 0.5
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * (200 + 1500 * t) * t)
    return (x + 0.05 * noise).astype(np.float32)


def test_fbank_matches_torchaudio_kaldi() -> None:
    # Reference: torchaudio 2.9.0 compliance.kaldi.fbank(x - x.mean(), htk_compat=True,
    # sample_frequency=16000, use_energy=False, window_type="hanning", num_mel_bins=128,
    # dither=0.0, frame_length=25, frame_shift=10) on _ref_signal(): rows 0, 50, 120, 197 and
    # columns 0, 10, 64, 100, 127; whole-array mean -5.6304.
    ref = np.array([
        [-9.9663, -1.0527, -7.6086, -1.2555, -2.4838],
        [-10.8497, -10.8547, 1.2543, -1.2917, -2.515],
        [-13.8433, -11.1601, -8.0165, -1.3042, -2.5237],
        [-12.304, -10.6154, -7.6927, -1.2651, -2.4921],
    ])
    x = _ref_signal()
    fb = pre.fbank((x - x.mean())[None])[0]
    assert fb.shape == (198, 128)  # snip_edges: 1 + (32000 - 400) // 160
    np.testing.assert_allclose(fb[[0, 50, 120, 197]][:, [0, 10, 64, 100, 127]], ref, atol=2e-3)
    assert fb.mean() == pytest.approx(-5.6304, abs=1e-3)


def test_audio_clips_pad_and_normalise() -> None:
    x = _ref_signal()
    clips = pre.audio_clips(np.concatenate([x, x[:8000]]), np.array([0.0, 2.0]))
    assert clips.shape == (2, 1, 128, 204)
    pad = (0.0 - pre.AUDIO_MEAN) / pre.AUDIO_STD  # ImageBind pads the fbank with 0, then normalises
    np.testing.assert_allclose(clips[0, 0, :, 198:], pad, atol=1e-6)  # 198 real frames, 6 padded
    np.testing.assert_allclose(clips[1, 0, :, 48:], pad, atol=1e-6)  # 0.5 s left: 48 frames
    assert not np.allclose(clips[0, 0, :, :198], pad)


def test_to_mono_16k_mixes_and_resamples() -> None:
    t = np.arange(48000) / 48000
    y = np.stack([np.sin(2 * np.pi * 1000 * t), np.zeros_like(t)])
    x = pre.to_mono_16k(y, sr=48000)
    assert x.shape == (16000,) and x.dtype == np.float32
    assert np.abs(x[1000:-1000]).max() == pytest.approx(0.5, abs=0.01)  # mean of both channels


def test_image_gray_and_colour() -> None:
    gray = np.full((90, 160), 128, np.uint8)
    out = pre.image(gray)
    assert out.shape == (3, 224, 224)
    expected = (128 / 255 - pre.CLIP_RGB_MEAN) / pre.CLIP_RGB_STD
    np.testing.assert_allclose(out[:, 112, 112], expected, atol=1e-4)
    # Centre crop of a wide picture: a red left edge is cut away, the green centre stays.
    rgb = np.zeros((100, 300, 3), np.uint8)
    rgb[:, :50, 0] = 255
    rgb[:, 50:250, 1] = 255
    c = pre.image(rgb)
    assert c[1, 112, 0] > 1.5 and c[0, 112, 0] < 0  # green at the crop's left edge, no red
    with pytest.raises(ValueError, match="neither"):
        pre.image(np.zeros((4, 4, 2), np.uint8))


@needs_imagebind
def test_model_module_imports_without_package_init_and_leaves_no_stubs() -> None:
    from avagent.reflection import imagebind_model as ibm

    mod = ibm.model_module()
    assert hasattr(mod, "ImageBindModel")
    assert "imagebind.data" not in sys.modules  # its torchaudio/torchvision module never ran
    assert "timm.layers" not in sys.modules or hasattr(sys.modules["timm.layers"], "__file__")


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory: pytest.TempPathFactory):
    import torch

    from avagent.reflection import imagebind_model as ibm

    torch.manual_seed(0)
    model = ibm.build_model(SMALL)
    path = tmp_path_factory.mktemp("ib") / "small.pt"
    ibm.save_checkpoint(path, model, SMALL)
    return path, model


@needs_imagebind
def test_checkpoint_round_trip_and_cache(small_ckpt, tmp_path) -> None:
    import torch

    from avagent.reflection import imagebind_model as ibm

    path, model = small_ckpt
    b = ibm.load_imagebind(path, device="cpu")
    assert ibm.load_imagebind(path, device="cpu") is b  # loaded once per (path, device)
    assert set(b.model.modality_trunks.keys()) == {"vision", "audio"}
    x = pre.audio_clips(_ref_signal(), np.array([0.0]))
    with torch.inference_mode():
        direct = model({"audio": torch.from_numpy(x)})["audio"]
    direct = torch.nn.functional.normalize(direct, dim=-1).numpy()
    np.testing.assert_allclose(b.embed("audio", x), direct, atol=1e-5)
    # A fresh random model differs, so the loaded weights are really the saved ones.
    torch.manual_seed(1)
    other = ibm.save_checkpoint(tmp_path / "other.pt", ibm.build_model(SMALL), SMALL)
    assert not np.allclose(ibm.load_imagebind(other, device="cpu").embed("audio", x), direct, atol=1e-3)
    # Weights replaced on disk are loaded again, not served from the cache.
    before = ibm.load_imagebind(other, device="cpu")
    ibm.save_checkpoint(other, model, SMALL)
    after = ibm.load_imagebind(other, device="cpu")
    assert after is not before
    np.testing.assert_allclose(after.embed("audio", x), direct, atol=1e-5)


@needs_imagebind
def test_load_errors_are_backend_errors(small_ckpt, tmp_path) -> None:
    import torch

    from avagent.reflection import imagebind_model as ibm

    with pytest.raises(BackendError, match="AVAGENT_IMAGEBIND_WEIGHTS"):
        ibm.load_imagebind(None)
    with pytest.raises(BackendError, match=r"not found: '.*nope\.pth'"):
        ibm.load_imagebind(tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(BackendError, match="cannot read"):
        ibm.load_imagebind(junk)
    # Weights of another size under a config that does not fit them.
    path, model = small_ckpt
    wrong = tmp_path / "wrong.pt"
    torch.save({"format": ibm.FORMAT, "config": {**SMALL, "audio_embed_dim": 64},
                "state_dict": model.state_dict()}, wrong)
    with pytest.raises(BackendError, match="do not fit"):
        ibm.load_imagebind(wrong, device="cpu")
    with pytest.raises(BackendError, match="dtype"):
        ibm.load_imagebind(path, dtype="int8")


@needs_imagebind
def test_shift_direction_positive_lag_means_audio_late(small_ckpt) -> None:
    """Audio delayed by 0.5 s: its curve at lag δ equals the original's at δ − 0.5 s."""
    from avagent.reflection import imagebind_model as ibm
    from avagent.reflection.imagebind import PairMeasure, curve_of, plan_windows

    path, _ = small_ckpt
    rng = np.random.default_rng(3)
    y, sr, frames = moving_block_av(rng, 0.0, dur=7.0, sr=48000)
    late = np.concatenate([np.zeros(24000), y[:-24000]])  # 0.5 s late
    m = PairMeasure(ibm.load_imagebind(path, device="cpu"))
    win = plan_windows(7.0)
    v = m.vision(frames, win.starts_s)
    c0 = curve_of(m.audio(pre.to_mono_16k(y, sr=sr), win.starts_s, win.shifts_s), v)
    c1 = curve_of(m.audio(pre.to_mono_16k(late, sr=sr), win.starts_s, win.shifts_s), v)
    k = round(0.5 / 0.25)
    np.testing.assert_allclose(c1[k:], c0[:-k], atol=2e-3)
    assert not np.allclose(c1, c0, atol=2e-3)


def test_plan_windows() -> None:
    from avagent.reflection.imagebind import plan_windows

    w = plan_windows(10.0)
    assert w.shifts_s.tolist() == [-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0]
    assert w.starts_s.min() >= 1.0 and w.starts_s.max() <= 10.0 - 2.0 - 1.0
    assert plan_windows(1.5).shifts_s.tolist() == [0.0]  # too short: no lags, sync cannot tell
    assert plan_windows(2.8).shifts_s.tolist() == [0.0]  # 0.4 s room < sep: no lags either
    assert plan_windows(3.2).shifts_s.tolist() == [-0.5, -0.25, 0.0, 0.25, 0.5]
    assert plan_windows(600.0, max_windows=8).starts_s.size == 8


@needs_imagebind
def test_calibrate_then_score(small_ckpt, tmp_path) -> None:
    from avagent.reflection import imagebind_model as ibm
    from avagent.reflection.imagebind import Calibration, calibrate
    from avagent.reflection.scorers import get_scorer

    path, _model = small_ckpt
    rng = np.random.default_rng(5)
    clips = [moving_block_av(rng, 0.0, dur=6.0, sr=16000) for _ in range(3)]
    b = ibm.load_imagebind(path, device="cpu")
    cal = calibrate(b, clips, shifts_s=(-0.5, 0.5), max_windows=3)
    assert cal.n_mismatched == 6 and cal.n_shifted == 6
    # The calibration's own meaning: a pair at the mismatched median scores 0.5.
    assert cal.alignment(float(np.median(cal.mismatched_quantiles))) == pytest.approx(0.5, abs=0.01)
    assert cal.alignment(-2.0) == 0.0 and cal.alignment(2.0) == 1.0
    assert np.all(np.diff(cal.shifted_quantiles) >= 0)

    with pytest.raises(BackendError, match="no calibration"):
        get_scorer("imagebind", weights=path, device="cpu").score_audio(
            clips[0][0], sr=16000, frames=clips[0][2])
    # Stored beside the weights, as the calibration script writes it.
    side = path.with_name(path.name + ".calibration.json")
    side.write_text(cal.model_dump_json())
    try:
        scorer = get_scorer("imagebind", weights=path, device="cpu", max_windows=3)
        y, sr, frames = clips[0]
        s1 = scorer.score_audio(y, sr=sr, frames=frames)
        assert 0.0 <= s1.alignment <= 1.0 and 0.0 <= s1.sync <= 1.0
        assert s1.details["imagebind"] == 1.0 and s1.details["sync_cannot_tell"] == 0.0
        assert s1.alignment == pytest.approx(cal.alignment(s1.details["cosine"]), abs=1e-3)
        assert scorer.score_audio(y, sr=sr, frames=frames) == s1  # deterministic
        from avagent.agent.perceive import perceive

        facts = perceive(y, sr=sr, frames=frames, audio_duration_s=6.0)
        s2, used = scorer.score(y, sr=sr, frames=frames, facts=facts)  # the scorer protocol
        assert s2 == s1 and used is facts
        # Another clip's sound under these frames gets another verdict.
        assert scorer.score_audio(clips[1][0], sr=sr, frames=frames).details["cosine"] != (
            s1.details["cosine"])
        # Colour pictures go through the same preprocessing (gray is repeated to RGB).
        rgb = np.repeat(frames.frames[..., None], 3, axis=3)
        np.testing.assert_array_equal(
            pre.vision_clips(rgb, frames.times_s, np.array([1.0])),
            pre.vision_clips(frames.frames, frames.times_s, np.array([1.0])))
        short = scorer.score_audio(y[: int(1.5 * sr)], sr=sr, frames=frames)
        assert short.sync == 0.85 and short.details["sync_cannot_tell"] == 1.0
        audio_only = scorer.score_audio(y, sr=sr, frames=None)
        assert audio_only.details["imagebind"] == 0.0
    finally:
        side.unlink()
    assert isinstance(Calibration.model_validate_json(cal.model_dump_json()), Calibration)


def test_scorer_arguments_and_registry() -> None:
    from avagent.reflection.imagebind import ImageBindScorer
    from avagent.reflection.scorers import SCORERS

    assert SCORERS["imagebind"] == "avagent.reflection.imagebind:ImageBindScorer"
    with pytest.raises(ParameterError, match="shift_step_s"):
        ImageBindScorer(__file__, shift_step_s=0.6, sep_s=0.5)
    with pytest.raises(BackendError, match="AVAGENT_IMAGEBIND_WEIGHTS"):
        ImageBindScorer(None)  # made without weights: fails at once, not on every clip


@needs_imagebind
@pytest.mark.slow
def test_imagebind_huge_builds() -> None:
    """The released configuration builds from the real classes (random weights, no download)."""
    from avagent.reflection import imagebind_model as ibm

    model = ibm.build_model(None)
    n = sum(p.numel() for p in model.parameters())
    trunks = model.modality_trunks
    assert set(trunks.keys()) == {"vision", "audio"}
    assert len(trunks["vision"].blocks) == 32 and len(trunks["audio"].blocks) == 12
    assert 0.7e9 < n < 0.8e9  # vision 632 M + audio 86 M; the text and other towers dropped


@needs_imagebind
@pytest.mark.media
def test_calibration_script_on_real_videos(small_ckpt, video_path, bunny_path, tmp_path,
                                           capsys) -> None:
    """bench/imagebind_calibrate decodes real videos, writes <weights>.calibration.json, and the
    scorer then reads it without further settings."""
    import json
    import shutil

    from avagent.bench import imagebind_calibrate
    from avagent.reflection.imagebind import ImageBindScorer
    from avagent.service import media

    weights = tmp_path / "w.pt"
    shutil.copy(small_ckpt[0], weights)
    rc = imagebind_calibrate.main([str(video_path), str(bunny_path), "--weights", str(weights),
                                   "--device", "cpu", "--width", "160"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["written"] == str(weights) + ".calibration.json"
    assert out["n_clips"] == 2 and out["n_mismatched"] == 2 and out["n_shifted"] == 8
    y, sr = media.load_audio(video_path)
    frames = media.load_frames(video_path, fps=2.0, width=160)
    s = ImageBindScorer(weights, device="cpu").score_audio(y, sr=sr, frames=frames)
    assert s.details["imagebind"] == 1.0 and 0.0 <= s.alignment <= 1.0
    assert imagebind_calibrate.main([str(video_path), "--weights", str(tmp_path / "no.pt")]) == 2
    assert "not found" in capsys.readouterr().err


@needs_imagebind
@pytest.mark.media
def test_repair_with_the_imagebind_scorer(small_ckpt, video_path, tmp_path) -> None:
    """Settings → service/backends → the graph: the input and the candidate are both scored by
    ImageBind; without weights the repair stops with a BackendError naming the setting."""
    import shutil

    from avagent.reflection import imagebind_model as ibm
    from avagent.reflection.imagebind import calibrate
    from avagent.service import media
    from avagent.service.pipeline import RepairOptions, repair_file
    from avagent.service.settings import Settings

    weights = tmp_path / "w.pt"
    shutil.copy(small_ckpt[0], weights)
    rng = np.random.default_rng(9)
    clips = [moving_block_av(rng, 0.0, dur=6.0, sr=16000) for _ in range(2)]
    cal = calibrate(ibm.load_imagebind(weights, device="cpu"), clips, shifts_s=(-0.5, 0.5),
                    max_windows=2)
    weights.with_name(weights.name + ".calibration.json").write_text(cal.model_dump_json())
    settings = Settings(cache_dir=tmp_path, scorer="imagebind", imagebind_weights=weights,
                        imagebind_device="cpu")
    opts = RepairOptions.from_settings(settings, max_rounds=1, outputs=["report"])
    report = repair_file(video_path, tmp_path / "out", settings=settings, options=opts)
    assert report["backends"]["scorer"] == "imagebind"
    assert report["baseline"]["details"]["imagebind"] == 1.0
    for r in report["rounds"]:
        assert r["scores"]["details"]["imagebind"] == 1.0
    y, sr = media.load_audio(video_path)
    assert report["baseline"]["details"]["cosine"] == pytest.approx(
        get_cosine(weights, y, sr, video_path, settings), abs=1e-3)
    with pytest.raises(BackendError, match="AVAGENT_IMAGEBIND_WEIGHTS"):
        bad = Settings(cache_dir=tmp_path, scorer="imagebind")
        repair_file(video_path, tmp_path / "out2", settings=bad, options=opts)
    assert not (tmp_path / "out2").exists()  # nothing half-written


def get_cosine(weights, y, sr, video_path, settings) -> float:
    from avagent.reflection.imagebind import ImageBindScorer
    from avagent.service import media

    frames = media.load_frames(video_path, fps=settings.frame_rate_hz, width=settings.frame_width)
    return ImageBindScorer(weights, device="cpu").score_audio(y, sr=sr, frames=frames).details[
        "cosine"]


@pytest.mark.media
def test_cli_imagebind_without_weights_is_one_clear_line(video_path, tmp_path, capsys,
                                                         monkeypatch) -> None:
    from avagent.service.cli import main
    from avagent.service.settings import get_settings

    monkeypatch.delenv("AVAGENT_IMAGEBIND_WEIGHTS", raising=False)
    get_settings.cache_clear()
    code = main(["repair", str(video_path), "-o", str(tmp_path / "o"), "--quiet",
                 "--scorer", "imagebind", "--imagebind-weights", str(tmp_path / "none.pth")])
    get_settings.cache_clear()
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ImageBind weights not found" in err[0] and "none.pth" in err[0]
    assert not (tmp_path / "o").exists()  # refused before any file was decoded
