"""Video anonymisation: every face of every frame replaced, one DP release per face track.

``anonymize_video(src, dst, anonymizer)`` reads the frames with imageio's ffmpeg plugin
(the ``imageio-ffmpeg`` wheel ships its own ffmpeg binary; ``pip install
"identitydp-fast[video]"``), detects the faces of each frame, links them into tracks
(:mod:`identitydp_fast.io.tracking`), and

* at a track's first frame calls ``Anonymizer.release_identities`` ONCE for that face:
  one epsilon-IdentityDP release of its identity vector;
* at every frame of the track calls ``Anonymizer.render`` with that released vector.

Privacy accounting: rendering reuses a released vector, which is post-processing of one
release, so a track costs epsilon (the anonymizer's, (effective_epsilon, delta) as
reported) however many frames it spans: no extra epsilon per frame. A person the
detector loses for longer than the tracker's max-age (default 1 second of video) and
finds again starts a new track, i.e. a new independent release; k tracks of one person
compose to k * epsilon. The report lists every track with its single release.

With a caller key (reproducible mode) each track's release uses its own key,
``privacy.keys.derive_key(key, salt, SHA-256 of the input video's bytes, "track <id>")``
with the run's salt (random unless given; the report's ``key_salt``), so tracks, videos
and runs never share noise (a shared noise vector would let anyone subtract two released
identities); the same key, salt and file reproduce the run.

Guarantees of the file handling:

* the output has the input's frame count, frame size (odd sizes too: 4:4:4 chroma then)
  and frame rate (the rate ffmpeg reports for the stream; 24000/1001-style NTSC rates
  are restored exactly; a variable-rate input becomes constant-rate);
* every audio stream of the input is kept: copied bit for bit when the output container
  takes its codec, else re-encoded with the container's audio codec (the report says
  which); subtitles, data streams and container metadata (e.g. location, device tags)
  are not copied;
* the output is written to a temporary file in the destination folder, checked (frame
  count, audio streams) and moved into place with ``os.replace``: ``dst`` is either the
  complete result or untouched; ``dst == src`` and an existing ``dst`` without
  ``overwrite=True`` are refused before any work;
* frames without faces pass through (re-encoded, not otherwise changed);
* unreadable, corrupt, still-image or audio-only inputs raise :class:`VideoError` with a
  one-line message naming the file and the problem.

Missed frames inside a track: a face the detector misses for up to ``fill_frames``
consecutive frames (default 5) while its track lives is drawn at the tracker's
constant-velocity prediction of its box and landmarks, with the track's released vector
(post-processing: no extra epsilon), so a brief miss (motion blur, a turned head) does not
show the original face. The video is processed in one pass, so this is a prediction
from the frames before, not an interpolation with the frames after. The report counts
filled frames per track (``filled``) and the gaps that remain (``gaps``: frames between the
first and last detection neither detected nor filled); a face missed for longer, or never
detected, is not replaced.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import secrets
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from ..privacy import keys as _keys
from .tracking import FaceTracker

#: output container (by extension) -> (video encoder, audio encoder when copying fails)
CONTAINERS = {
    ".mp4": ("libx264", "aac"),
    ".m4v": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "aac"),
    ".avi": ("mpeg4", "libmp3lame"),
    ".webm": ("libvpx-vp9", "libopus"),
}
#: encoder quality settings: x264 CRF 18 is visually lossless; the others comparable
_QUALITY = {"libx264": ["-crf", "18", "-preset", "medium"], "mpeg4": ["-qscale:v", "2"],
            "libvpx-vp9": ["-crf", "24", "-b:v", "0", "-row-mt", "1"]}


class VideoError(ValueError):
    """A video that cannot be read or written; the message is one line."""


class OutputExistsError(VideoError):
    """The output video exists and overwrite was not asked for."""


def _ffmpeg() -> str:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise VideoError("video needs the imageio-ffmpeg package: pip install "
                         "\"identitydp-fast[video]\" (or imageio imageio-ffmpeg)") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def _one_line(text: str, limit: int = 200) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    line = lines[-1] if lines else "unknown error"
    return line if len(line) <= limit else line[:limit] + "..."


@dataclasses.dataclass(frozen=True)
class VideoProbe:
    """What ffmpeg says about a file: container format names, the first video stream's
    codec and coded size (width, height), every audio stream's codec, the duration in
    seconds (None if unknown)."""

    container: str
    video_codec: str
    size: tuple[int, int]
    audio_codecs: tuple[str, ...]
    duration: float | None


def probe_video(path: str | os.PathLike) -> VideoProbe:
    """Probe ``path`` with the bundled ffmpeg. Raises VideoError for a missing file, data
    ffmpeg cannot parse, a file without a video stream (audio only, or only cover art) and
    a still image."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoError(f"{path}: no such file")
    proc = subprocess.run([_ffmpeg(), "-hide_banner", "-nostdin", "-i", path],
                          capture_output=True, text=True, errors="replace", timeout=60)
    text = proc.stderr
    m = re.search(r"^Input #0, (.+?), from ", text, re.M)
    if m is None:
        raise VideoError(f"{path}: not a readable video (ffmpeg: {_one_line(text)})")
    container = m.group(1)
    streams = [ln for ln in text.splitlines() if ln.lstrip().startswith("Stream #0:")]
    video = [ln for ln in streams if " Video: " in ln and "(attached pic)" not in ln]
    audio = [ln.split(" Audio: ", 1)[1].split()[0].rstrip(",") for ln in streams if " Audio: " in ln]
    if not video:
        raise VideoError(f"{path}: no video stream (container {container}"
                         f"{', audio only' if audio else ''})")
    if container.endswith("_pipe") or container == "image2":
        raise VideoError(f"{path}: a still image ({container}), not a video; "
                         "use `identitydp anonymize` for images")
    codec = video[0].split(" Video: ", 1)[1].split()[0].rstrip(",")
    s = re.search(r"[ ,](\d+)x(\d+)[ ,]", video[0])
    size = (0, 0) if s is None else (int(s.group(1)), int(s.group(2)))
    d = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", text)
    duration = None if d is None else int(d.group(1)) * 3600 + int(d.group(2)) * 60 + float(d.group(3))
    return VideoProbe(container, codec, size, tuple(audio), duration)


def exact_fps(fps: float) -> Fraction:
    """ffmpeg's printed rate as a fraction; 23.98 / 29.97 / 59.94 (etc.) are the NTSC
    rates n * 1000 / 1001 and are restored exactly."""
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be finite and > 0, got {fps!r}")
    for n in (24, 30, 48, 60, 120, 240):
        ntsc = Fraction(n * 1000, 1001)
        if abs(fps - float(ntsc)) < 0.006:
            return ntsc
    return Fraction(fps).limit_denominator(1000)


def track_key(key: bytes, salt: bytes, video_sha256: bytes, track_id: int) -> bytes:
    """The key of one track's release in reproducible mode (see the module docstring)."""
    return _keys.derive_key(key, salt, video_sha256, f"track {int(track_id)}")


@dataclasses.dataclass
class TrackRecord:
    """One face track: its frames, and its single release."""

    track_id: int
    birth_frame: int
    last_frame: int
    frames: int = 0          # frames in which the face was detected and rendered
    filled_frames: list = dataclasses.field(default_factory=list)  # missed, drawn at the prediction
    releases: int = 1        # always 1: rendering reuses the release
    epsilon: float = float("nan")
    effective_epsilon: float = float("nan")
    delta: float = float("nan")
    key_supplied: bool = False

    @property
    def filled(self) -> int:
        """Frames in which the face was missed and drawn at the tracker's prediction."""
        return len(self.filled_frames)

    @property
    def gaps(self) -> int:
        """Frames between the first and the last detection neither detected nor filled."""
        inside = sum(1 for f in self.filled_frames if f <= self.last_frame)
        return self.last_frame - self.birth_frame + 1 - self.frames - inside


@dataclasses.dataclass
class VideoReport:
    """What ``anonymize_video`` did (``to_dict`` for JSON)."""

    input: str
    output: str
    frames: int
    fps: str
    size: tuple[int, int]
    video_codec: str
    audio: list[str]
    frames_with_faces: int
    faces_rendered: int
    tracks: list[TrackRecord]
    seconds: float
    warnings: list[str] = dataclasses.field(default_factory=list)
    key_salt: str | None = None  # hex, in reproducible mode: pass it back to reproduce the run

    @property
    def releases(self) -> int:
        return sum(t.releases for t in self.tracks)

    def privacy_summary(self) -> str:
        if not self.tracks:
            return "no face found: no identity released"
        eps = sorted({round(t.epsilon, 6) for t in self.tracks})
        eff = max(t.effective_epsilon for t in self.tracks)
        delta = max(t.delta for t in self.tracks)
        return (f"{len(self.tracks)} face track(s), one epsilon-IdentityDP release each "
                f"(epsilon {', '.join(f'{e:g}' for e in eps)} per track, effective <= {eff:.6g}, "
                f"delta <= {delta:.2g}); the {self.faces_rendered} rendered faces reuse their "
                f"track's release: no extra epsilon per frame")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["size"] = list(self.size)
        d["releases"] = self.releases
        for rec, t in zip(d["tracks"], self.tracks):
            rec["gaps"] = t.gaps
            rec["filled"] = t.filled
        d["privacy"] = {
            "releases": self.releases,
            "releases_per_track": 1,
            "epsilon_per_track": sorted({t.epsilon for t in self.tracks}),
            "extra_epsilon_per_frame": 0.0,
            "statement": self.privacy_summary() + ". A person split over k tracks (lost for "
                         "longer than the tracker's max-age) has k independent releases: "
                         "k * epsilon by basic composition.",
        }
        return d


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_paths(src: str, dst: str, overwrite: bool) -> tuple[str, str]:
    ext = Path(dst).suffix.lower()
    if ext not in CONTAINERS:
        raise VideoError(f"{dst}: unsupported output extension {ext or '(none)'!r}; "
                         f"use one of {', '.join(sorted(CONTAINERS))}")
    if _same_file(src, dst):
        raise VideoError(f"{dst}: the output is the input file; choose another output path")
    if os.path.isdir(dst):
        raise VideoError(f"{dst}: is a directory; give an output file name")
    if os.path.exists(dst) and not overwrite:
        raise OutputExistsError(f"{dst}: exists; pass overwrite=True (--overwrite) to replace it")
    folder = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(folder):
        raise VideoError(f"{dst}: the folder {folder} does not exist")
    return ext, folder


def _run_ffmpeg(args: list[str]) -> tuple[bool, str]:
    proc = subprocess.run([_ffmpeg(), "-hide_banner", "-nostdin", "-y", "-v", "error", *args],
                          capture_output=True, text=True, errors="replace")
    return proc.returncode == 0, proc.stderr


def _mux_audio(video_tmp: str, src: str, out_tmp: str, audio_encoder: str) -> list[str]:
    """Video from video_tmp, every audio stream of src (copied, else re-encoded), no
    metadata; returns a description per audio stream."""
    base = ["-i", video_tmp, "-i", src, "-map", "0:v:0", "-map", "1:a", "-map_metadata", "-1",
            "-c:v", "copy"]
    ok, err = _run_ffmpeg(base + ["-c:a", "copy", out_tmp])
    if ok:
        return ["copied"]
    ok, err2 = _run_ffmpeg(base + ["-c:a", audio_encoder, out_tmp])
    if not ok:
        raise VideoError(f"{src}: cannot write its audio into {Path(out_tmp).suffix} "
                         f"(ffmpeg: {_one_line(err2)})")
    return [f"re-encoded with {audio_encoder} (the container refused a copy)"]


def _predicted_faces(tracker: FaceTracker, update, frame: int, fill_frames: int, w: int,
                     h: int) -> list:
    """(track id, FaceRecord at the prediction) for the live tracks missed in this frame for
    at most ``fill_frames`` frames whose predicted box still overlaps the picture."""
    from ..pipeline.detect import FaceRecord

    out = []
    seen = set(update.assignment)
    for tid, tr in sorted(tracker.live.items()):
        if tid in seen or not 1 <= tr.missed <= fill_frames:
            continue
        box, lm = tr.predicted(frame)
        if box[2] < 0 or box[3] < 0 or box[0] > w - 1 or box[1] > h - 1:
            continue  # moved out of the picture
        clipped = (min(max(box[0], 0), w - 1), min(max(box[1], 0), h - 1),
                   min(max(box[2], 0), w - 1), min(max(box[3], 0), h - 1))
        out.append((tid, FaceRecord(box=tuple(int(round(v)) for v in clipped), landmarks=lm,
                                    score=float("nan"))))
    return out


def _detect(anonymizer, frame: np.ndarray) -> list:
    """The anonymizer's own detector and settings, so video and photos find the same faces."""
    return anonymizer.detect(frame)


def anonymize_video(src: str | os.PathLike, dst: str | os.PathLike, anonymizer, key=None,
                    overwrite: bool = False, max_age_seconds: float = 1.0,
                    progress: Callable[[int], None] | None = None,
                    salt: bytes | str | None = None, fill_frames: int = 5) -> VideoReport:
    """Anonymise every frame of ``src`` into ``dst`` (container chosen by dst's extension:
    see CONTAINERS); returns the report. ``anonymizer``: an identitydp_fast.Anonymizer
    (its epsilon, backend, device, detector). ``key``: None (fresh CSPRNG keys) or 32
    bytes / 64 hex characters (reproducible; one derived key per track). ``salt``: with a
    key, the run's 16-byte salt (32 hex characters) to reproduce; None draws a fresh one
    (the report's key_salt).
    ``max_age_seconds``: how long a lost face keeps its track (and its release).
    ``fill_frames``: a track's face missed for at most this many consecutive frames is
    drawn at the tracker's prediction (0: never).
    ``progress(frames_done)`` is called after each frame."""
    try:
        import imageio.v2 as iio
    except ImportError:
        raise VideoError("video needs the imageio package: pip install \"identitydp-fast[video]\"") from None
    src, dst = os.fspath(src), os.fspath(dst)
    ext, folder = _check_paths(src, dst, overwrite)
    if isinstance(fill_frames, bool) or not isinstance(fill_frames, int) or fill_frames < 0:
        raise ValueError(f"fill_frames must be an integer >= 0, got {fill_frames!r}")
    master_key = None if key is None else _keys.check_key(key)
    if master_key is None and salt is not None:
        raise ValueError("salt needs a key (without a key every track draws a fresh key)")
    run_salt = None
    if master_key is not None:
        run_salt = _keys.fresh_salt() if salt is None else _keys.check_salt(salt)
    info = probe_video(src)
    video_sha256 = _keys.file_sha256(src) if master_key is not None else b""
    video_encoder, audio_encoder = CONTAINERS[ext]
    start = time.perf_counter()

    try:
        # accurate rounding in the YUV -> RGB conversion: the default is biased by ~1 level
        reader = iio.get_reader(src, format="FFMPEG",
                                output_params=["-sws_flags", "accurate_rnd+full_chroma_int"])
        meta = reader.get_meta_data()
    except Exception as exc:  # imageio/ffmpeg raise OSError, RuntimeError, IndexError...
        raise VideoError(f"{src}: cannot read frames ({_one_line(exc)})") from None
    w, h = (int(v) for v in meta["size"])
    if not meta.get("fps"):
        reader.close()
        raise VideoError(f"{src}: ffmpeg reports no frame rate for its video stream")
    fps = exact_fps(float(meta["fps"]))
    max_age = max(0, int(round(float(fps) * max_age_seconds)))
    tracker = FaceTracker(max_age=max_age)
    released: dict[int, np.ndarray] = {}
    records: dict[int, TrackRecord] = {}

    out_tmp = _reserve(folder, Path(dst).name, ".tmp" + ext)
    video_tmp = _reserve(folder, Path(dst).name, ".video" + ext) if info.audio_codecs else out_tmp
    # 4:2:0 needs even sizes; odd sizes keep every pixel with 4:4:4 instead of resizing
    pix_fmt = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"
    if video_encoder == "mpeg4" and pix_fmt != "yuv420p":  # mpeg4 has no 4:4:4
        _cleanup(reader, None, [out_tmp, video_tmp])
        raise VideoError(f"{dst}: .avi (mpeg4) needs an even frame size, the input is {w}x{h}; "
                         "use .mp4 or .mkv")
    writer = None
    n = frames_with_faces = faces_rendered = 0
    try:
        writer = iio.get_writer(video_tmp, format="FFMPEG", fps=fps, codec=video_encoder,
                                pixelformat=pix_fmt, macro_block_size=1, quality=None,
                                output_params=list(_QUALITY.get(video_encoder, [])),
                                ffmpeg_log_level="error")
        frames = iter(reader)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except Exception as exc:
                raise VideoError(f"{src}: frame {n} cannot be decoded ({_one_line(exc)})") from None
            frame = np.asarray(frame)
            if frame.shape != (h, w, 3):
                raise VideoError(f"{src}: frame {n} has shape {frame.shape}, expected {(h, w, 3)}")
            faces = _detect(anonymizer, frame)
            update = tracker.update(faces, n)
            for tid in update.born:
                j = update.assignment.index(tid)
                k = (None if master_key is None
                     else track_key(master_key, run_salt, video_sha256, tid))
                # (1, D), numpy or torch as the anonymizer returns it; kept as is for render
                released[tid] = anonymizer.release_identities(frame, [faces[j]], key=k)[:1]
                records[tid] = TrackRecord(tid, n, n, key_supplied=master_key is not None)
            out = frame
            filled = _predicted_faces(tracker, update, n, fill_frames, w, h)
            if faces or filled:
                drawn = list(faces) + [f for _, f in filled]
                ids = list(update.assignment) + [tid for tid, _ in filled]
                vectors = _concat([released[tid] for tid in ids])
                out, results = anonymizer.render(frame, drawn, vectors)
                for tid, _ in filled:
                    records[tid].filled_frames.append(n)
                for tid, res in zip(update.assignment, results):
                    rec = records[tid]
                    rec.frames += 1
                    rec.last_frame = n
                    if tid in update.born:
                        rec.epsilon = float(res.epsilon)
                        rec.effective_epsilon = float(res.effective_epsilon)
                        rec.delta = float(res.delta)
                frames_with_faces += 1
                faces_rendered += len(faces)
            writer.append_data(np.ascontiguousarray(out))
            n += 1
            if progress is not None:
                progress(n)
        writer.close()
        writer = None
        reader.close()
        if n == 0:
            raise VideoError(f"{src}: no frames could be read")
        audio = []
        if info.audio_codecs:
            how = _mux_audio(video_tmp, src, out_tmp, audio_encoder)
            audio = [f"{c}: {how[0]}" for c in info.audio_codecs]
        _verify(out_tmp, n, (w, h), len(info.audio_codecs))
        os.replace(out_tmp, dst)
    except BaseException:
        _cleanup(reader, writer, [out_tmp, video_tmp])
        raise
    if video_tmp != out_tmp:
        _remove(video_tmp)
    tracks = [records[t.track_id] for t in tracker.finish()]
    warnings = []
    if info.duration and n < info.duration * float(fps) - 2:
        # ffmpeg stops quietly at a truncated stream: say so instead of hiding it
        warnings.append(f"read {n} frames, but the input's duration {info.duration:.2f} s at "
                        f"{float(fps):.3f} fps suggests about {round(info.duration * float(fps))}: "
                        "the input may be truncated or damaged")
    return VideoReport(src, dst, n, str(fps), (w, h), video_encoder, audio, frames_with_faces,
                       faces_rendered, tracks, time.perf_counter() - start, warnings,
                       None if run_salt is None else run_salt.hex())


def _concat(rows):
    if hasattr(rows[0], "detach"):
        import torch

        return torch.cat(rows, dim=0)
    return np.concatenate([np.asarray(r) for r in rows], axis=0)


def _verify(path: str, frames: int, size: tuple[int, int], audio_streams: int) -> None:
    """The written file has the frames, the size and the audio streams it should have
    (imageio's writer does not report ffmpeg failures, so this is the check)."""
    import imageio_ffmpeg

    try:
        nframes, _ = imageio_ffmpeg.count_frames_and_secs(path)
        out = probe_video(path)
    except Exception as exc:
        raise VideoError(f"the encoder wrote an unreadable file ({_one_line(exc)})") from None
    got = (nframes, out.size, len(out.audio_codecs))
    if got != (frames, tuple(size), audio_streams):
        raise VideoError(f"the encoder wrote (frames, size, audio streams) = {got}, expected "
                         f"{(frames, tuple(size), audio_streams)}")


def _reserve(folder: str, name: str, suffix: str) -> str:
    """Create an empty, unique, hidden file next to the destination (same filesystem, so
    os.replace is atomic) with the permissions of a normally created file (umask applies,
    unlike mkstemp's 0600); ffmpeg picks the container from the suffix."""
    for _ in range(100):
        path = os.path.join(folder, f".{name}.{secrets.token_hex(4)}{suffix}")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return path
        except FileExistsError:
            continue
    raise VideoError(f"{folder}: cannot create a temporary file")


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _cleanup(reader, writer, paths) -> None:
    for obj in (writer, reader):
        if obj is not None:
            try:
                obj.close()
            except Exception:  # the error being raised matters more than this one
                pass
    for p in set(paths):
        _remove(p)


def write_report(report: VideoReport, path: str | os.PathLike) -> None:
    """The report as JSON, written atomically (temp file + os.replace)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".json.part")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(report.to_dict(), fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
