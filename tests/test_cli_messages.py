"""The command line's messages and exit codes (issue: the rough edges a new user hit): one
error line naming the problem, exit 2 when the command could not start, for every
subcommand."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from identitydp_fast.cli import main
from identitydp_fast.privacy.keys import check_key

ROOT = Path(__file__).resolve().parents[1]


def test_a_short_hex_key_is_named_in_hex_characters():
    with pytest.raises(ValueError, match=r"--key must be 64 hex characters \(32 bytes\), got 4 characters"):
        check_key("abcd", "--key")
    with pytest.raises(ValueError, match="must be 32 bytes, got 2"):   # bytes keep bytes
        check_key(b"ab", "key")
    assert check_key("ab" * 32) == bytes([0xAB]) * 32


@pytest.mark.parametrize("argv, message", [
    (["--batch", "0"], "--batch must be >= 1, got 0"),
    (["--repeats", "0"], "--repeats must be >= 1, got 0"),
    (["--warmup", "-1"], "--warmup must be >= 0, got -1"),
    (["--config", "nope"], "unknown --config 'nope'"),
])
def test_bench_bad_arguments_exit_2_with_one_line(argv, message, capsys):
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("identitydp bench: error: ") and message in err and err.count("\n") == 1


def test_video_bad_option_exits_2_before_the_files_are_looked_at(tmp_path, capsys):
    pytest.importorskip("imageio_ffmpeg", reason="the video extra is not installed")
    missing = tmp_path / "missing.mp4"
    out = tmp_path / "out.mp4"
    assert main(["anonymize-video", str(missing), str(out), "--epsilon", "-1"]) == 2
    assert "epsilon" in capsys.readouterr().err
    assert main(["anonymize-video", str(missing), str(out), "--key", "abcd"]) == 2
    assert "64 hex characters" in capsys.readouterr().err
    out.write_bytes(b"not mine to overwrite")
    assert main(["anonymize-video", str(missing), str(out)]) == 2
    err = capsys.readouterr().err
    assert "exists; pass --overwrite to replace it" in err and "overwrite=True" not in err
    assert out.read_bytes() == b"not mine to overwrite"
    out.unlink()
    assert main(["anonymize-video", str(missing), str(out)]) == 1    # unreadable input: 1
    assert "no such file" in capsys.readouterr().err


def test_evaluate_help_cites_only_files_in_the_repository(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = capsys.readouterr().out
    assert "DESIGN.md" not in text
    for cited in ("docs/MODEL_CARD_prior-256.md",):
        assert cited in text and (ROOT / cited).is_file()


def test_the_default_output_folders_are_git_ignored():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for folder in ("eval_out/results.md", "demo_out/x.png"):
        assert subprocess.run(["git", "check-ignore", "-q", folder], cwd=ROOT).returncode == 0, folder


def test_anonymize_hints_at_upsample_when_no_face_is_found(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    Image.fromarray(np.full((48, 48, 3), 128, np.uint8)).save(tmp_path / "blank.png")
    assert main(["anonymize", str(tmp_path / "blank.png"), "--out", str(tmp_path / "out"),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "hint: 1 image(s) had no face found" in printed and "--upsample 2" in printed
    assert main(["anonymize", str(tmp_path / "blank.png"), "--out", str(tmp_path / "out4"),
                 "--upsample", "4", "--quiet"]) == 0
    assert "hint:" not in capsys.readouterr().out


@pytest.mark.parametrize("case", ["report-folder-missing", "report-is-folder", "out-under-a-file",
                                  "out-read-only"])
def test_unwritable_out_or_report_is_refused_before_any_image(case, tmp_path, capsys):
    src = ROOT / "examples" / "astronaut.png"
    out, report = tmp_path / "out", None
    if case == "report-folder-missing":
        report = tmp_path / "no" / "such" / "r.json"
    elif case == "report-is-folder":
        report = tmp_path
    elif case == "out-under-a-file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "out"
    else:
        if not Path("/proc/self").is_dir():
            pytest.skip("no read-only /proc here")
        out = Path("/proc/identitydp-test-out")
    argv = ["anonymize", str(src), "--out", str(out), "--quiet"] + (["--report", str(report)] if report else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error" in err and ("--out" in err or "--report" in err), err
    assert not (tmp_path / "out").exists()          # nothing was processed


def test_folder_scans_say_what_they_left_out_and_why(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    img = Image.fromarray(np.full((40, 40, 3), 90, np.uint8))
    img.save(src / "top.png")
    img.save(src / "sub" / "deep.png")
    img.save(src / "photo.dat", format="PNG")         # an image with an unknown extension
    (src / "notes.txt").write_text("not an image")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["anonymize", str(src), str(empty), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert f"note: {src}: skipped 1 sub-folder(s) (sub): --recursive includes them" in printed
    assert any(line.startswith(f"note: {src / 'photo.dat'}: a PNG image by its content") for line in printed)
    assert f"note: {empty}: no image files found in this folder" in printed
    assert not any("notes.txt" in line for line in printed)      # counted in the summary only
    assert any("ignored 2 non-image file(s)" in line for line in printed)


def test_noise_labels_diagnostics_and_a_batch_centre_voids_the_guarantee(capsys):
    import json

    assert main(["noise", "--n", "4", "--epsilon", "5", "--json"]) == 0
    out = capsys.readouterr().out
    assert "diagnostic, computed from the UNRELEASED input" in out and "does NOT hold" not in out
    assert json.loads(out.strip().splitlines()[-1])["guarantee_holds"] is True
    assert main(["noise", "--n", "4", "--epsilon", "5", "--centered", "--json"]) == 0
    out = capsys.readouterr().out
    assert "the guarantee above does NOT hold for these rows" in out
    assert json.loads(out.strip().splitlines()[-1])["guarantee_holds"] is False


def test_identity_labels_its_distance_as_a_diagnostic(capsys):
    assert main(["identity", str(ROOT / "examples" / "astronaut.png"), "--epsilon", "1000",
                 "--backend", "reference"]) == 0
    out = capsys.readouterr().out
    assert "diagnostic, computed from the UNRELEASED descriptor" in out


def test_a_reused_key_warns_and_a_fresh_or_new_stream_does_not():
    """Reproducible mode: the same key on the same stream repeats the noise exactly, so the
    two releases' difference is the inputs' difference: the second use warns."""
    import warnings

    import torch

    from identitydp_fast.privacy.identity_dp import IdentityDP
    from identitydp_fast.privacy.keys import KeyReuseWarning, fresh_key

    key = fresh_key()
    dp = IdentityDP(1.0)
    x, y = torch.randn(1, 16), torch.randn(1, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error", KeyReuseWarning)
        a = dp(x, key=key)                      # first use: silent
        dp(x, key=key, stream=1)                # another stream: silent
        dp(x)                                   # no key: never
    with pytest.warns(KeyReuseWarning, match="already used on stream 0"):
        again = dp(x, key=key)
    assert torch.equal(again.vectors, a.vectors)   # what it warns about: the same noise exactly
    with pytest.warns(KeyReuseWarning):
        dp(y, key=key)                             # on another input as well
    assert "secret and used for this release alone" in a.summary()
