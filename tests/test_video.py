"""anonymize_video: one release per track, every frame rendered with it, audio, fps and size
kept, pass-through of face-free frames, atomic output and one-line errors.

The clips are made here with the ffmpeg binary of imageio-ffmpeg: 12 frames 256x256 of
examples/astronaut.png, shifted 3 px per frame, 24 fps, with a 440 Hz sine audio track;
and a face-free test pattern of odd size. The Anonymizer uses a small random-init model
(its faces are noise, which makes "the face changed" easy to see).
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

imageio_ffmpeg = pytest.importorskip(
    "imageio_ffmpeg", reason="the video extra is not installed (pip install -e '.[video]')")
iio = pytest.importorskip("imageio.v2", reason="the video extra is not installed (pip install -e '.[video]')")

from identitydp_fast.io import video  # noqa: E402
from identitydp_fast.io.video import VideoError, anonymize_video, probe_video, track_key  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "examples" / "astronaut.png"
KEY = "ab" * 32


def ffmpeg(*args: str) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args],
                   check=True, timeout=60)


def frames_of(path) -> list[np.ndarray]:
    with iio.get_reader(str(path), format="FFMPEG") as r:
        return [np.asarray(f) for f in r]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    face = d / "face.mp4"
    # crop 320x320 from the top of the 512x512 photo (face, no mission patch), moving
    # 3 px right and 1 px down per frame, scaled to 256x256; near-lossless (crf 10)
    ffmpeg("-loop", "1", "-framerate", "24", "-i", str(ASTRONAUT),
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050",
           "-filter:v", "crop=320:320:96+3*n:n,scale=256:256", "-frames:v", "12",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "10", "-c:a", "aac", "-shortest", str(face))
    plain = d / "plain.mkv"   # no face, odd size, no audio
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=129x97:rate=10", "-frames:v", "5",
           "-c:v", "libx264", "-pix_fmt", "yuv444p", "-crf", "0", str(plain))
    audio = d / "sine.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440", "-t", "0.3", str(audio))
    return {"face": face, "plain": plain, "audio": audio}


@pytest.fixture(scope="module")
def model_path(tiny_model_path):
    return tiny_model_path


@pytest.fixture(scope="module")
def anonymizer(model_path):
    from identitydp_fast.anonymizer import Anonymizer

    return Anonymizer(model=str(model_path), epsilon=10.0)


class Spy:
    """Delegates to a real Anonymizer and records every release and render."""

    def __init__(self, anon, fail_at_render: int | None = None):
        self.anon, self.fail_at = anon, fail_at_render
        self.releases: list[torch.Tensor] = []
        self.rendered: list[torch.Tensor] = []

    def detect(self, frame):
        return self.anon.detect(frame)

    def release_identities(self, frame, faces, key=None):
        v = self.anon.release_identities(frame, faces, key=key)
        self.releases.append(v.clone())
        return v

    def render(self, frame, faces, identities):
        if self.fail_at is not None and len(self.rendered) == self.fail_at:
            raise RuntimeError("simulated failure inside render")
        self.rendered.append(torch.as_tensor(identities).clone())
        return self.anon.render(frame, faces, identities)


def _footprint(face, h: int, w: int, margin: int = 4):
    """Frame pixels the model crop of ``face`` covers (all paste-back may touch), + margin."""
    from identitydp_fast.pipeline.align import crop_transform

    m = crop_transform(np.array(face.landmarks)[None], 128)[0]      # crop -> frame
    pts = torch.tensor([[0.0, 0, 1], [128, 0, 1], [0, 128, 1], [128, 128, 1]], dtype=torch.float64) @ m.T
    lo, hi = pts.min(dim=0).values, pts.max(dim=0).values
    return (max(0, int(lo[0]) - margin), max(0, int(lo[1]) - margin),
            min(w - 1, int(hi[0]) + margin), min(h - 1, int(hi[1]) + margin))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_one_release_per_track_audio_fps_size_kept(clips, anonymizer, tmp_path):
    spy = Spy(anonymizer)
    out = tmp_path / "out.mp4"
    rep = anonymize_video(clips["face"], out, spy, key=KEY)

    assert (rep.frames, rep.fps, rep.size) == (12, "24", (256, 256))
    assert rep.tracks and rep.frames_with_faces == 12
    # one release call per track, one face per release, never more
    assert len(spy.releases) == len(rep.tracks) == rep.releases
    assert all(v.shape == (1, 128) for v in spy.releases)
    assert all(t.releases == 1 and t.epsilon == 10.0 and t.key_supplied for t in rep.tracks)
    assert all(t.effective_epsilon >= 10.0 and 0 <= t.delta < 1e-10 for t in rep.tracks)
    # the moving face is one track spanning the clip
    main = max(rep.tracks, key=lambda t: t.frames)
    assert (main.birth_frame, main.last_frame, main.frames) == (0, 11, 12)
    # every rendered identity row is one of the released vectors: no per-frame release
    released = torch.cat(spy.releases)
    rendered = torch.cat(spy.rendered)
    assert len(spy.rendered) == 12 and rendered.shape[0] == rep.faces_rendered
    assert all(bool((released == row).all(dim=1).any()) for row in rendered)
    d = rep.to_dict()
    assert d["privacy"]["releases"] == len(rep.tracks)
    assert d["privacy"]["extra_epsilon_per_frame"] == 0.0
    assert d["privacy"]["epsilon_per_track"] == [10.0]
    json.dumps(d)

    # the file: frames, size, fps, audio stream; faces changed, the rest close to the input
    info = probe_video(out)
    assert info.size == (256, 256) and info.audio_codecs == ("aac",)
    with iio.get_reader(str(out), format="FFMPEG") as r:
        assert r.get_meta_data()["fps"] == 24.0
    src, dst = frames_of(clips["face"]), frames_of(out)
    assert len(dst) == 12 and all(f.shape == (256, 256, 3) for f in dst)
    faces = [anonymizer.detect(f) for f in src]
    for a, b, fs in zip(src, dst, faces):
        diff = np.abs(a.astype(int) - b.astype(int)).mean(axis=2)
        keep = np.ones(diff.shape, bool)
        for f in fs:
            l, t, r_, btm = f.box
            assert diff[t:btm + 1, l:r_ + 1].mean() > 10          # the face was replaced
            x0, y0, x1, y1 = _footprint(f, 256, 256)
            keep[y0:y1 + 1, x0:x1 + 1] = False
        # x264 at CRF 18 with 4:2:0 chroma: ~2 grey levels on this detailed 256x256 clip
        assert diff[keep].mean() < 3.0
    assert _leftovers(tmp_path) == []


def test_same_key_and_salt_same_releases_tracks_videos_and_runs_never_share_keys(
        clips, anonymizer, tmp_path):
    """Track keys come from (key, run salt, the video's SHA-256, track id): before, they
    were HMAC(key, track id), so track 0 had the same noise in every video and every run."""
    k, s1, s2 = bytes.fromhex(KEY), bytes(16), bytes([1]) + bytes(15)
    v1, v2 = bytes(32), bytes([1]) + bytes(31)
    assert track_key(k, s1, v1, 0) != track_key(k, s1, v1, 1)
    assert track_key(k, s1, v1, 0) != track_key(k, s1, v2, 0)    # another video
    assert track_key(k, s1, v1, 0) != track_key(k, s2, v1, 0)    # another run
    assert track_key(k, s1, v1, 0) == track_key(k, s1, v1, 0) and len(track_key(k, s1, v1, 7)) == 32
    runs, reps = [], []
    for name in ("a.mkv", "b.mkv"):
        spy = Spy(anonymizer)
        salt = None if not reps else reps[0].key_salt     # the second run passes the first's salt
        reps.append(anonymize_video(clips["face"], tmp_path / name, spy, key=KEY, salt=salt))
        runs.append(torch.cat(spy.releases))
    assert reps[0].key_salt == reps[1].key_salt and len(reps[0].key_salt) == 32
    assert reps[0].to_dict()["key_salt"] == reps[0].key_salt
    assert torch.equal(runs[0], runs[1])
    spy = Spy(anonymizer)
    anonymize_video(clips["face"], tmp_path / "d.mkv", spy, key=KEY)  # same key, fresh salt
    assert not torch.equal(torch.cat(spy.releases), runs[0])
    spy = Spy(anonymizer)
    rep = anonymize_video(clips["face"], tmp_path / "c.mkv", spy)     # fresh CSPRNG keys
    assert not torch.equal(torch.cat(spy.releases), runs[0]) and rep.key_salt is None
    with pytest.raises(ValueError, match="salt needs a key"):
        anonymize_video(clips["face"], tmp_path / "e.mkv", spy, salt=bytes(16))


def test_frames_without_faces_pass_through_odd_size(clips, anonymizer, tmp_path):
    spy = Spy(anonymizer)
    out = tmp_path / "plain.mp4"
    rep = anonymize_video(clips["plain"], out, spy)
    assert (rep.frames, rep.fps, rep.size, rep.tracks, rep.audio) == (5, "10", (129, 97), [], [])
    assert spy.releases == [] and spy.rendered == []
    assert "no identity released" in rep.privacy_summary()
    src, dst = frames_of(clips["plain"]), frames_of(out)
    assert len(dst) == 5 and dst[0].shape == (97, 129, 3)            # no resize to even sizes
    for a, b in zip(src, dst):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 1.5


def test_refusals_and_bad_inputs(clips, anonymizer, tmp_path):
    src = tmp_path / "in.mp4"
    src.write_bytes(clips["face"].read_bytes())
    before = src.read_bytes()
    with pytest.raises(VideoError, match="the output is the input"):
        anonymize_video(src, src, anonymizer, overwrite=True)
    with pytest.raises(VideoError, match="the output is the input"):
        anonymize_video(src, tmp_path / "." / "in.mp4", anonymizer, overwrite=True)
    assert src.read_bytes() == before
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"keep me")
    with pytest.raises(VideoError, match="exists; pass overwrite=True"):
        anonymize_video(src, existing, anonymizer)
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(VideoError, match="unsupported output extension '.gif'"):
        anonymize_video(src, tmp_path / "x.gif", anonymizer)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(os.urandom(4096))
    with pytest.raises(VideoError, match="not a readable video"):
        anonymize_video(corrupt, tmp_path / "x.mp4", anonymizer)
    with pytest.raises(VideoError, match="a still image"):
        anonymize_video(ASTRONAUT, tmp_path / "x.mp4", anonymizer)
    with pytest.raises(VideoError, match="no video stream"):
        anonymize_video(clips["audio"], tmp_path / "x.mp4", anonymizer)
    with pytest.raises(VideoError, match="no such file"):
        anonymize_video(tmp_path / "missing.mp4", tmp_path / "x.mp4", anonymizer)
    with pytest.raises(ValueError, match="64 hex"):
        anonymize_video(src, tmp_path / "x.mp4", anonymizer, key="zz")
    for exc in (VideoError("x"),):
        assert "\n" not in str(exc)
    assert not (tmp_path / "x.mp4").exists() and _leftovers(tmp_path) == []


def test_failure_mid_video_leaves_output_untouched(clips, anonymizer, tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    with pytest.raises(RuntimeError, match="simulated failure"):
        anonymize_video(clips["face"], out, Spy(anonymizer, fail_at_render=5), overwrite=True)
    assert out.read_bytes() == b"previous result"
    assert _leftovers(tmp_path) == []


def test_exact_fps():
    from fractions import Fraction

    assert video.exact_fps(29.97) == Fraction(30000, 1001)
    assert video.exact_fps(23.98) == Fraction(24000, 1001)
    assert video.exact_fps(25.0) == 25 and video.exact_fps(12.5) == Fraction(25, 2)
    with pytest.raises(ValueError):
        video.exact_fps(0.0)


def test_cli(clips, model_path, tmp_path, capsys):
    from identitydp_fast.cli import main

    out, report = tmp_path / "out.mkv", tmp_path / "report.json"
    rc = main(["anonymize-video", str(clips["face"]), str(out), "--model", str(model_path),
               "--epsilon", "20", "--key", KEY, "--report", str(report)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "12 frames 256x256 at 24 fps" in text and "no extra epsilon per frame" in text
    rec = json.loads(report.read_text())
    assert rec["frames"] == 12 and rec["privacy"]["releases"] == len(rec["tracks"]) >= 1
    assert rec["privacy"]["epsilon_per_track"] == [20.0]
    assert all(t["releases"] == 1 and t["key_supplied"] for t in rec["tracks"])
    assert probe_video(out).audio_codecs == ("aac",)
    # refusals: one line on stderr, nothing written; a refused OUT is a bad argument (exit 2,
    # as `identitydp anonymize`), an unreadable input exit 1
    before = out.read_bytes()
    assert main(["anonymize-video", str(clips["face"]), str(out), "--model", str(model_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("identitydp anonymize-video: error:") and "exists" in err and err.count("\n") == 1
    assert out.read_bytes() == before
    assert main(["anonymize-video", str(clips["face"]), str(clips["face"])]) == 2
    assert "the output is the input" in capsys.readouterr().err
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    assert main(["anonymize-video", str(bad), str(tmp_path / "x.mp4")]) == 1
    assert "not a readable video" in capsys.readouterr().err
    assert main(["anonymize-video", str(clips["face"]), str(tmp_path / "y.mp4"), "--model",
                 str(tmp_path / "missing.safetensors")]) == 2
    assert "missing.safetensors" in capsys.readouterr().err
    assert _leftovers(tmp_path) == []


def _container_metadata(path) -> str:
    """ffmpeg's description of ``path``: every global and per-stream metadata tag (ffmpeg
    prints it for an input without an output, then exits 1)."""
    out = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
                         timeout=60, capture_output=True, text=True)
    assert "Input #0" in out.stderr, out.stderr
    return out.stderr.split("Input #0", 1)[1]


def test_container_and_stream_metadata_are_not_copied(clips, anonymizer, tmp_path):
    """Location, title, comment and per-stream tags of the input (a phone's video names
    where and often who) are absent from the output; the audio is still there."""
    tagged = tmp_path / "tagged.mp4"
    ffmpeg("-i", str(clips["face"]), "-c", "copy",
           "-metadata", "location=+52.5200+013.4050/", "-metadata", "title=Jane Doe birthday",
           "-metadata", "comment=at home", "-metadata:s:a:0", "handler_name=Jane phone mic",
           "-movflags", "use_metadata_tags", str(tagged))
    before = _container_metadata(tagged)
    assert "52.5200" in before and "Jane Doe" in before   # the fixture really carries them
    out = tmp_path / "out.mp4"
    anonymize_video(tagged, out, anonymizer)
    after = _container_metadata(out)
    for secret in ("52.5200", "Jane", "birthday", "at home"):
        assert secret not in after, after
    assert probe_video(out).audio_codecs == ("aac",)


class Blinking(Spy):
    """A detector that misses every face in the frames ``missed`` (0-based)."""

    def __init__(self, anon, missed):
        super().__init__(anon)
        self.missed, self.frame = set(missed), -1

    def detect(self, frame):
        self.frame += 1
        return [] if self.frame in self.missed else self.anon.detect(frame)


@pytest.mark.parametrize("fill_frames", [5, 0])
def test_missed_frames_inside_a_track_are_filled_from_the_prediction(clips, anonymizer, tmp_path,
                                                                     fill_frames):
    """Frames 4 and 5 without a detection: with fill_frames the face is still replaced there
    (drawn at the tracker's prediction with the track's release: no new release) and the
    report counts 2 filled frames and no gap; with fill_frames=0 those frames keep the
    original face and count as gaps."""
    spy = Blinking(anonymizer, missed={4, 5})
    out = tmp_path / f"out{fill_frames}.mp4"
    rep = anonymize_video(clips["face"], out, spy, key=KEY, fill_frames=fill_frames)
    main = max(rep.tracks, key=lambda t: t.frames)
    assert main.frames == 10 and main.releases == 1 and len(spy.releases) == len(rep.tracks)
    src, dst = frames_of(clips["face"]), frames_of(out)
    truth = anonymizer.detect(src[4])[0]
    l, t, r, b = truth.box
    diffs = [np.abs(src[i].astype(int) - dst[i].astype(int)).mean(axis=2)[t:b + 1, l:r + 1].mean()
             for i in (4, 5)]
    if fill_frames:
        assert (main.filled, main.gaps) == (2, 0), (main.filled, main.gaps)
        assert min(diffs) > 10                        # replaced in the missed frames too
        assert rep.to_dict()["tracks"][0]["filled"] == 2
    else:
        assert (main.filled, main.gaps) == (0, 2)
        assert max(diffs) < 4                         # the original face shows: a gap


def test_bad_fill_frames_raises(clips, anonymizer, tmp_path):
    with pytest.raises(ValueError, match="fill_frames"):
        anonymize_video(clips["face"], tmp_path / "x.mp4", anonymizer, fill_frames=-1)
