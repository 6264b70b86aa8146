"""``identitydp anonymize`` (identitydp_fast/cli/anonymize.py, io/files.py, io/image_codec.py):
folders and relative paths, formats and modes, never writing over inputs, atomic re-runs,
bad files, EXIF orientation, the JSON report. A real Anonymizer runs with a tiny
random-init model (its faces are noise, but every stage runs)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from identitydp_fast.cli import main

Image = pytest.importorskip("PIL.Image")
pytest.importorskip("dlib")
ASTRONAUT = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"
KEY = "5a" * 32


@pytest.fixture(scope="module")
def model_path(tiny_model_path):
    return tiny_model_path


def _face(size=200) -> Image.Image:
    """The example photo scaled so dlib's HOG finds one face (box ~36 px at 200)."""
    return Image.open(ASTRONAUT).convert("RGB").resize((size, size), Image.LANCZOS)


def _noise(w=48, h=40, seed=0, mode="RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).convert(mode)


def _run(argv, model_path, capsys, quiet=True):
    code = main(["anonymize", *argv, "--model", model_path] + (["--quiet"] if quiet else []))
    out = capsys.readouterr()
    return code, out.out, out.err


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im).copy()


def test_recursive_folder_keeps_relative_paths_and_formats_then_skips_and_overwrites(
        tmp_path, model_path, capsys):
    src, out = tmp_path / "photos", tmp_path / "anon"
    (src / "trip" / "day2").mkdir(parents=True)
    _face().save(src / "face.jpg", quality=92)
    _noise(seed=1).save(src / "trip" / "noise.png")
    _noise(seed=2, mode="L").save(src / "trip" / "day2" / "grey.bmp")
    _noise(seed=3).save(src / "trip" / "day2" / "pic.webp", lossless=True)
    _noise(seed=4).save(src / "trip" / "scan.tiff", compression="tiff_lzw")
    (src / "notes.txt").write_text("not an image")
    _noise(seed=5).save(src / ".hidden.png")
    before = _snapshot(src)
    report = tmp_path / "r.json"

    code, stdout, stderr = _run([str(src), "--out", str(out), "--recursive", "--report", str(report)],
                                model_path, capsys)
    assert code == 0, stderr
    assert _snapshot(src) == before                       # inputs untouched
    expect = {"face.jpg": "JPEG", "trip/noise.png": "PNG", "trip/day2/grey.bmp": "BMP",
              "trip/day2/pic.webp": "WEBP", "trip/scan.tiff": "TIFF"}
    assert sorted(_snapshot(out)) == sorted(expect)       # no .part files, no hidden, no .txt
    for rel, fmt in expect.items():
        with Image.open(out / rel) as im, Image.open(src / rel) as orig:
            assert im.format == fmt and im.size == orig.size and im.mode == orig.mode, rel
    for rel in ("trip/noise.png", "trip/day2/grey.bmp", "trip/day2/pic.webp", "trip/scan.tiff"):
        assert np.array_equal(_pixels(out / rel), _pixels(src / rel)), rel   # no face: unchanged
    rows = {Path(r["input"]).relative_to(src).as_posix(): r for r in json.loads(report.read_text())["files"]}
    assert rows["face.jpg"]["status"] == "ok" and len(rows["face.jpg"]["faces"]) == 1
    assert {rows[k]["status"] for k in expect if k != "face.jpg"} == {"no_face"}
    left, top, right, bottom = rows["face.jpg"]["faces"][0]["box"]
    diff = np.abs(_pixels(out / "face.jpg").astype(int) - _pixels(src / "face.jpg").astype(int))
    assert diff[top:bottom, left:right].mean() > 10      # the face was replaced...
    assert diff[:, :40].mean() < 4                       # ...the far background only re-encoded
    assert "anonymised 1 image(s) (1 face(s)), 4 without a face" in stdout
    assert "0 failed" in stdout and "ignored 1 non-image file(s)" in stdout

    first = _snapshot(out)
    code, stdout, _ = _run([str(src), "--out", str(out), "-r"], model_path, capsys)
    assert code == 0 and "5 skipped" in stdout and _snapshot(out) == first

    (out / "trip" / "noise.png").unlink()
    code, stdout, _ = _run([str(src), "--out", str(out), "-r"], model_path, capsys)
    assert code == 0 and "4 skipped" in stdout and "1 without a face" in stdout
    assert (out / "trip" / "noise.png").exists()

    code, stdout, _ = _run([str(src), "--out", str(out), "-r", "--overwrite"], model_path, capsys)
    assert code == 0 and "0 skipped" in stdout and "anonymised 1 image(s)" in stdout
    # a fresh CSPRNG key per run: the face differs between runs
    assert _snapshot(out)["face.jpg"] != first["face.jpg"]


def test_without_recursive_only_the_folders_own_files(tmp_path, model_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    _noise().save(src / "top.png")
    _noise().save(src / "sub" / "deep.png")
    single = tmp_path / "single.gif"
    _noise(seed=9).save(single)
    code, stdout, stderr = _run([str(src), str(single), "--out", str(out)], model_path, capsys, quiet=False)
    assert code == 0 and sorted(_snapshot(out)) == ["single.gif", "top.png"]
    assert stderr == ""                        # no progress bar when stderr is not a terminal
    with Image.open(out / "single.gif") as im:
        assert im.format == "GIF"


@pytest.mark.parametrize("recursive", [False, True])
def test_a_symlink_loop_in_a_folder_is_one_error_line_and_the_rest_completes(tmp_path, model_path,
                                                                             capsys, recursive):
    """Without -r a loop (a -> b -> a) used to end the run with OSError [Errno 40]."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    _noise().save(src / "ok.png")
    (src / "a").symlink_to("b")
    (src / "b").symlink_to("a")
    code, stdout, stderr = _run([str(src), "--out", str(out)] + (["-r"] if recursive else []),
                                model_path, capsys, quiet=False)
    assert sorted(_snapshot(out)) == ["ok.png"]
    if not recursive:
        assert code == 1  # failures are reported in the exit code
        assert stderr.count("Too many levels of symbolic links") == 2
        assert "1 without a face" in stdout and "2 failed" in stdout


def test_refuses_output_folder_that_would_touch_inputs(tmp_path, model_path, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    _face().save(src / "a.jpg")
    _noise().save(src / "sub" / "b.png")
    before = _snapshot(src)
    cases = [
        ([str(src), "--out", str(src)], "is the input folder"),
        ([str(src), "--out", str(tmp_path / "in" / ".." / "in")], "is the input folder"),
        ([str(src), "--out", str(src / "sub"), "--recursive"], "inside the input folder"),
        ([str(src / "sub" / "b.png"), "--out", str(src / "sub")], "would overwrite the input"),
        ([str(src / "a.jpg"), str(tmp_path / "in" / "a.jpg"), "--out", str(tmp_path / "o")],
         "both be written"),
    ]
    for argv, match in cases:
        code, stdout, stderr = _run(argv, model_path, capsys)
        assert code == 2, argv
        assert match in stderr and stderr.count("\n") == 1, stderr
        assert _snapshot(src) == before
    assert not (tmp_path / "o").exists()


def test_bad_files_one_error_line_each_and_the_rest_complete(tmp_path, model_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    _noise(seed=1).save(src / "good.png")
    _face().save(src / "face.jpg")
    buf = io.BytesIO()
    _noise(96, 96, seed=2).save(buf, "PNG")
    png = buf.getvalue()
    (src / "truncated.png").write_bytes(png[: len(png) // 2])
    corrupt = bytearray(png)
    idat = png.index(b"IDAT")
    corrupt[idat + 20: idat + 60] = bytes(40)                       # garbled compressed data
    (src / "corrupt.png").write_bytes(bytes(corrupt))
    (src / "zero.jpg").write_bytes(b"")
    (src / "text.jpg").write_text("this is not a JPEG\n")
    Image.new("L", (3000, 2000)).save(src / "bomb.png")           # 6 MP of zeros, ~6 kB
    _noise(seed=3).save(src / "anim.gif", save_all=True, append_images=[_noise(seed=4)])
    _noise(seed=5).save(src / "phone.jpg", "MPO", save_all=True, append_images=[_noise(seed=6)])
    assert (src / "bomb.png").stat().st_size < 50_000
    missing = tmp_path / "missing.png"
    report = tmp_path / "report.json"
    code, stdout, stderr = _run([str(src), str(missing), "--out", str(out), "--max-pixels", "1000000",
                                 "--report", str(report)], model_path, capsys)
    assert code == 1
    lines = stderr.strip().splitlines()
    expect = {"truncated.png": "truncated", "corrupt.png": "corrupt", "zero.jpg": "empty file",
              "text.jpg": "not an image", "bomb.png": "pixel limit", "missing.png": "no such file",
              "anim.gif": "2 frames"}
    assert len(lines) == len(expect), stderr
    for name, what in expect.items():
        (line,) = [ln for ln in lines if f"{name}: error:" in ln]
        assert what in line, line
        assert not (out / name).exists()
    assert sorted(_snapshot(out)) == ["face.jpg", "good.png", "phone.jpg"]
    with Image.open(out / "phone.jpg") as im:                      # MPO: main image only
        assert im.format == "JPEG" and getattr(im, "n_frames", 1) == 1
    assert "7 failed" in stdout and "anonymised 1 image(s)" in stdout
    rows = {Path(r["input"]).name: r for r in json.loads(report.read_text())["files"]}
    assert {n: r["status"] for n, r in rows.items()} == {
        **{n: "failed" for n in expect}, "good.png": "no_face", "face.jpg": "ok", "phone.jpg": "no_face"}
    assert any("extra frame" in n for n in rows["phone.jpg"]["notes"])
    assert all(rows[n]["error"] and "\n" not in rows[n]["error"] for n in expect)


def test_modes_grey_rgba_palette_cmyk_16bit(tmp_path, model_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    face = _face()
    face.convert("L").save(src / "grey_face.png")
    rgba = face.convert("RGBA")
    alpha = np.tile(np.linspace(40, 255, 200).astype(np.uint8), (200, 1))
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(src / "rgba_face.png")
    pal = _noise(seed=3).convert("P")
    pal.info["transparency"] = 0
    pal.save(src / "palette.png", transparency=0)
    _face(64).convert("CMYK").save(src / "cmyk.jpg", quality=95)     # too small for a face
    grey16 = (np.random.default_rng(5).integers(0, 65536, (40, 48))).astype(np.uint16)
    Image.fromarray(grey16).save(src / "deep.png")
    report = tmp_path / "r.json"
    code, _, stderr = _run([str(src), "--out", str(out), "--report", str(report)], model_path, capsys)
    assert code == 0, stderr
    rows = {Path(r["input"]).name: r for r in json.loads(report.read_text())["files"]}

    g_in, g_out = _pixels(src / "grey_face.png"), _pixels(out / "grey_face.png")
    assert Image.open(out / "grey_face.png").mode == "L" and rows["grey_face.png"]["status"] == "ok"
    l, t, r, b = rows["grey_face.png"]["faces"][0]["box"]
    assert np.abs(g_out[t:b, l:r].astype(int) - g_in[t:b, l:r]).mean() > 10
    assert np.array_equal(g_out[:, :40], g_in[:, :40])           # grey round trip is exact

    a_out = _pixels(out / "rgba_face.png")
    assert a_out.shape == (200, 200, 4) and rows["rgba_face.png"]["status"] == "ok"
    assert np.array_equal(a_out[..., 3], alpha)                   # alpha kept as it was

    p_in = np.asarray(Image.open(src / "palette.png").convert("RGBA"))
    assert Image.open(out / "palette.png").mode == "RGBA"
    assert np.array_equal(_pixels(out / "palette.png"), p_in)

    with Image.open(out / "cmyk.jpg") as im:
        assert im.format == "JPEG" and im.mode == "RGB"
    ref = np.asarray(Image.open(src / "cmyk.jpg").convert("RGB")).astype(int)
    assert np.abs(_pixels(out / "cmyk.jpg").astype(int) - ref).mean() < 6   # q95 re-encode only
    assert any("CMYK" in n for n in rows["cmyk.jpg"]["notes"])

    with Image.open(out / "deep.png") as im:
        assert im.mode == "I;16"
    assert np.array_equal(_pixels(out / "deep.png"), grey16)       # no face: all 16 bits kept
    assert any("16-bit" in n for n in rows["deep.png"]["notes"])


def test_exif_orientation_honoured_and_tag_dropped(tmp_path, model_path, capsys):
    upright = _face()
    stored = upright.transpose(Image.Transpose.ROTATE_90).crop((0, 0, 200, 180))  # sideways, 200x180
    upright = stored.transpose(Image.Transpose.ROTATE_270)                       # what a viewer shows
    exif = Image.Exif()
    exif[0x0112] = 6            # "rotate 90 CW to display"
    exif[0x010F] = "TestCam"    # Make: dropped by default (allow-list), kept with --keep-metadata
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    stored.save(src / "phone.jpg", exif=exif, quality=95)
    report = tmp_path / "r.json"
    code, _, stderr = _run([str(src / "phone.jpg"), "--out", str(out), "--report", str(report)],
                           model_path, capsys)
    assert code == 0, stderr
    row = json.loads(report.read_text())["files"][0]
    # the sideways face is only found when the orientation is applied first
    assert row["status"] == "ok" and len(row["faces"]) == 1
    with Image.open(out / "phone.jpg") as im:
        assert im.size == upright.size == (180, 200)
        tags = im.getexif()
        assert 0x0112 not in tags and 0x010F not in tags
        got = np.asarray(im.convert("RGB")).astype(int)
    l, t, r, b = row["faces"][0]["box"]
    mask = np.ones(got.shape[:2], bool)
    mask[max(t - 20, 0):b + 20, max(l - 20, 0):r + 20] = False
    assert np.abs(got - np.asarray(upright).astype(int))[mask].mean() < 4   # upright, same picture


def test_key_report_reproducible_and_per_file(tmp_path, model_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _face().save(src / "a.png")
    _face().save(src / "b.png")            # the same picture under another name
    report = tmp_path / "r.json"
    code, stdout, stderr = _run([str(src), "--out", str(tmp_path / "o1"), "--key", KEY,
                                 "--epsilon", "50", "--report", str(report)], model_path, capsys)
    assert code == 0, stderr
    assert f"wrote report {report}" in stdout
    rep = json.loads(report.read_text())
    assert rep["epsilon"] == 50.0 and rep["key_supplied"] is True
    assert "identity vector only" in rep["privacy"] and "supplied --key" in rep["privacy"]
    salt = rep["key_salt"]
    assert len(salt) == 32 and f"--salt {salt}" in stdout
    assert rep["totals"] == {**rep["totals"], "files": 2, "ok": 2, "faces": 2, "failed": 0}
    for row in rep["files"]:
        assert set(row) >= {"input", "output", "status", "faces", "error", "seconds", "sha256"}
        assert row["error"] is None and row["seconds"] > 0
        face = row["faces"][0]
        assert face["epsilon"] == 50.0 and face["key_supplied"] is True
        assert face["effective_epsilon"] >= 50.0 and 0 <= face["delta"] < 1e-10
        assert len(face["box"]) == 4
    _run([str(src), "--out", str(tmp_path / "o2"), "--key", KEY, "--salt", salt, "--epsilon", "50"],
         model_path, capsys)
    one, two = _snapshot(tmp_path / "o1"), _snapshot(tmp_path / "o2")
    assert one == two                          # same key, salt, bytes and paths: same outputs
    assert not np.array_equal(_pixels(tmp_path / "o1" / "a.png"), _pixels(tmp_path / "o1" / "b.png"))
    # the same key in another run (a fresh salt): independent noise, on the same files
    _run([str(src), "--out", str(tmp_path / "o4"), "--key", KEY, "--epsilon", "50"], model_path, capsys)
    assert not np.array_equal(_pixels(tmp_path / "o1" / "a.png"), _pixels(tmp_path / "o4" / "a.png"))

    code, _, _ = _run([str(src), "--out", str(tmp_path / "o3"), "--report", str(report)], model_path, capsys)
    rep = json.loads(report.read_text())
    assert code == 0 and rep["key_supplied"] is False and "CSPRNG" in rep["privacy"]
    assert rep["files"][0]["faces"][0]["key_supplied"] is False


@pytest.mark.parametrize("argv,match", [
    (["--key", "abc"], "--key"),
    (["--batch-size", "0"], "--batch-size"),
    (["--max-pixels", "0"], "--max-pixels"),
    (["--epsilon", "-3"], "epsilon"),
])
def test_usage_errors_exit_2(tmp_path, model_path, capsys, argv, match):
    _noise().save(tmp_path / "x.png")
    code, _, stderr = _run([str(tmp_path / "x.png"), "--out", str(tmp_path / "o"), *argv], model_path, capsys)
    assert code == 2 and match in stderr and stderr.startswith("identitydp anonymize: error:")
    assert not (tmp_path / "o").exists()


def test_missing_model_file_is_a_usage_error(tmp_path, capsys):
    _noise().save(tmp_path / "x.png")
    code = main(["anonymize", str(tmp_path / "x.png"), "--out", str(tmp_path / "o"),
                 "--model", str(tmp_path / "nope.safetensors"), "-q"])
    assert code == 2 and "nope.safetensors" in capsys.readouterr().err


def test_interrupt_leaves_complete_outputs_and_a_report(tmp_path, model_path, capsys, monkeypatch):
    from identitydp_fast.anonymizer import Anonymizer

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(3):
        _noise(seed=i).save(src / f"{i}.png")
    real, calls = Anonymizer.anonymize, []

    def second_call_interrupted(self, image, *a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, image, *a, **kw)

    monkeypatch.setattr(Anonymizer, "anonymize", second_call_interrupted)
    report = tmp_path / "r.json"
    code, stdout, _ = _run([str(src), "--out", str(out), "--report", str(report)], model_path, capsys)
    assert code == 130 and "interrupted after 1 of 3 file(s)" in stdout
    assert sorted(_snapshot(out)) == ["0.png"]                # complete, no temporary files
    assert np.array_equal(_pixels(out / "0.png"), _pixels(src / "0.png"))
    rep = json.loads(report.read_text())
    assert rep["interrupted"] is True and [r["status"] for r in rep["files"]] == ["no_face"]


def test_failed_write_keeps_the_old_output(tmp_path, monkeypatch):
    from identitydp_fast.io import files

    target = tmp_path / "o" / "x.png"
    target.parent.mkdir()
    target.write_bytes(b"old")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        files.write_atomic(target, b"new")
    assert target.read_bytes() == b"old" and sorted(p.name for p in target.parent.iterdir()) == ["x.png"]
    monkeypatch.undo()
    files.write_atomic(target, b"new")
    assert target.read_bytes() == b"new" and (target.stat().st_mode & 0o777) != 0o600


def _exif_with_everything() -> "Image.Exif":
    """An EXIF block with what a phone writes that names who, where, when and with what."""
    exif = Image.Exif()
    exif[0x010F] = "TestCam"                 # Make
    exif[0x0110] = "Model X"                 # Model
    exif[0x013B] = "Jane Doe"                # Artist
    exif[0x8298] = "(c) Jane Doe"            # Copyright
    exif[0x0132] = "2026:01:02 03:04:05"     # DateTime
    exif[0x011A] = 300.0                     # XResolution: kept
    exif[0x011B] = 300.0                     # YResolution: kept
    exif[0x0128] = 2                         # ResolutionUnit: kept
    exif[0x8769] = {0xA001: 1,               # ColorSpace sRGB: kept
                    0xA431: "SN123456",      # BodySerialNumber
                    0xA430: "Jane",          # CameraOwnerName
                    0x9286: b"ASCII\0\0\0hello",  # UserComment
                    0x927C: b"vendor data"}  # MakerNote
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}  # GPS
    return exif


@pytest.mark.parametrize("flag,kept", [(None, "safe"), ("--keep-metadata", "keep"),
                                       ("--strip-metadata", "none")])
def test_metadata_allow_list_by_default(tmp_path, model_path, capsys, flag, kept):
    """Default: only resolution and colour-space tags survive (before: GPS, Artist,
    Copyright, serial numbers were all kept); --keep-metadata keeps EXIF minus
    orientation, thumbnail and maker note; --strip-metadata writes none."""
    src = tmp_path / "in"
    src.mkdir()
    _face().save(src / "a.jpg", exif=_exif_with_everything(), quality=95)
    report = tmp_path / "r.json"
    argv = [str(src / "a.jpg"), "--out", str(tmp_path / "out"), "--report", str(report)]
    code, _, stderr = _run(argv + ([flag] if flag else []), model_path, capsys)
    assert code == 0, stderr
    assert json.loads(report.read_text())["metadata"] == kept
    with Image.open(tmp_path / "out" / "a.jpg") as im:
        tags = im.getexif()
        sub = tags.get_ifd(0x8769)
        gps = tags.get_ifd(0x8825)
    private = {0x010F, 0x0110, 0x013B, 0x8298, 0x0132}
    if kept == "safe":
        assert set(tags) <= {0x011A, 0x011B, 0x0128, 0x0213, 0x8769}
        assert tags[0x011A] == 300.0 and set(sub) == {0xA001} and not gps
    elif kept == "keep":
        assert private <= set(tags) and gps and 0xA431 in sub and 0x927C not in sub
    else:
        assert not len(tags)


def test_metadata_flags_are_exclusive(tmp_path, model_path, capsys):
    with pytest.raises(SystemExit):
        _run([str(tmp_path), "--out", str(tmp_path / "o"), "--keep-metadata", "--strip-metadata"],
             model_path, capsys)


def test_derived_keys_differ_per_key_salt_content_and_name():
    """Every input of a run gets its own key from (master, run salt, SHA-256 of its bytes,
    name): before, the key was HMAC(master, name) only, so two runs with one --key on
    different photos under the same names shared their noise."""
    import hashlib

    from identitydp_fast.privacy.keys import derive_key

    k1, k2 = bytes(32), bytes([1]) + bytes(31)
    s1, s2 = bytes(16), bytes([1]) + bytes(15)
    c1, c2 = hashlib.sha256(b"photo 1").digest(), hashlib.sha256(b"photo 2").digest()
    keys = {derive_key(k1, s1, c1, "a.jpg"), derive_key(k1, s1, c1, "b.jpg"),
            derive_key(k1, s1, c1, "sub/a.jpg"), derive_key(k2, s1, c1, "a.jpg"),
            derive_key(k1, s2, c1, "a.jpg"), derive_key(k1, s1, c2, "a.jpg")}
    assert len(keys) == 6 and all(len(k) == 32 for k in keys)
    assert derive_key(k1, s1, c1, "a.jpg") == derive_key(k1, s1, c1, "a.jpg")
    with pytest.raises(ValueError, match="salt"):
        derive_key(k1, b"short", c1, "a.jpg")
    with pytest.raises(ValueError, match="SHA-256"):
        derive_key(k1, s1, b"x", "a.jpg")


def test_same_names_different_photos_same_key_do_not_share_noise(tmp_path, model_path, capsys):
    """Two folders with a.png holding different photos, one --key and one --salt: the
    content hash keeps their noise apart (the released noisy residuals differ)."""
    from identitydp_fast.privacy.keys import check_salt, derive_key, file_sha256

    a, b = tmp_path / "x" / "a.png", tmp_path / "y" / "a.png"
    for path, size in ((a, 200), (b, 210)):
        path.parent.mkdir()
        _face(size).save(path)
    salt = "00" * 16
    key_a = derive_key(bytes.fromhex(KEY), check_salt(salt), file_sha256(a), "a.png")
    key_b = derive_key(bytes.fromhex(KEY), check_salt(salt), file_sha256(b), "a.png")
    assert key_a != key_b
    for folder in ("x", "y"):
        code, _, stderr = _run([str(tmp_path / folder), "--out", str(tmp_path / f"o{folder}"),
                                "--key", KEY, "--salt", salt, "--report",
                                str(tmp_path / f"{folder}.json")], model_path, capsys)
        assert code == 0, stderr
    ra, rb = (json.loads((tmp_path / f"{f}.json").read_text()) for f in ("x", "y"))
    assert ra["key_salt"] == rb["key_salt"] == salt
    assert ra["files"][0]["faces"][0]["key_id"] != rb["files"][0]["faces"][0]["key_id"]


def test_salt_without_key_is_a_usage_error(tmp_path, model_path, capsys):
    _face().save(tmp_path / "a.png")
    code, _, stderr = _run([str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--salt", "00" * 16],
                           model_path, capsys)
    assert code == 2 and "--salt needs --key" in stderr
    code, _, stderr = _run([str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--key", KEY,
                            "--salt", "abcd"], model_path, capsys)
    assert code == 2 and "--salt must be 32 hex characters" in stderr


def test_min_score_drops_weak_detections(tmp_path, model_path, capsys):
    """The astronaut photo with the default detector (centerface): her face scores 0.93 and
    nothing else reaches the decoding floor (dlib's HOG also reported her mission patch)."""
    import json
    import shutil
    shutil.copy(ASTRONAUT, tmp_path / "a.png")
    faces = {}
    for score in (0.0, 0.99):
        rep = tmp_path / f"r{score}.json"
        code, _, _ = _run([str(tmp_path / "a.png"), "--out", str(tmp_path / f"o{score}"),
                           "--min-score", str(score), "--report", str(rep)], model_path, capsys)
        assert code == 0
        faces[score] = len(json.loads(rep.read_text())["files"][0]["faces"])
    assert faces == {0.0: 1, 0.99: 0}
