"""Output files: only a new file or an existing regular file is ever replaced; temporary files
keep the target's ending and are still recognised as stale when their process is gone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from unisal.errors import RunError
from unisal.io import atomic_path, check_output_file, remove_stale_temporaries


def test_a_new_or_regular_file_is_accepted(tmp_path: Path):
    assert check_output_file(tmp_path / "new.csv") == tmp_path / "new.csv"
    (tmp_path / "old.csv").write_text("x")
    assert check_output_file(tmp_path / "old.csv") == tmp_path / "old.csv"


def test_a_fifo_or_device_is_refused(tmp_path: Path, device_node: Path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(RunError) as excinfo:
        check_output_file(fifo)
    assert (
        str(excinfo.value)
        == f"--out {fifo} is not a regular file (a FIFO); name a new file or a regular file"
    )
    device = str(device_node)
    with pytest.raises(RunError) as excinfo:
        check_output_file(device)
    assert (
        str(excinfo.value)
        == f"--out {device} is not a regular file (a device); name a new file or a regular file"
    )


def test_a_symbolic_link_is_refused_even_to_a_regular_file(tmp_path: Path):
    target = tmp_path / "target.csv"
    target.write_text("keep")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    with pytest.raises(RunError) as excinfo:
        check_output_file(link)
    assert str(excinfo.value) == f"--out {link} is a symbolic link; name the file itself or a new file"
    assert target.read_text() == "keep" and link.is_symlink()


def test_a_protected_path_or_anything_under_a_protected_folder_is_refused(tmp_path: Path):
    (tmp_path / "imgs" / "red").mkdir(parents=True)
    image = tmp_path / "imgs" / "red" / "red_0.png"
    image.write_bytes(b"png")
    (tmp_path / "alias").symlink_to(tmp_path / "imgs")  # a folder link does not hide it
    for out in (image, tmp_path / "imgs" / "new.csv", tmp_path / "alias" / "red" / "red_0.png"):
        with pytest.raises(RunError) as excinfo:
            check_output_file(out, protected={tmp_path / "imgs": "the project's image folder"})
        assert str(excinfo.value) == (
            f"--out {out} is inside the project's image folder {tmp_path / 'imgs'}; write it elsewhere"
        )
    assert image.read_bytes() == b"png"


def test_atomic_path_refuses_to_replace_a_fifo(tmp_path: Path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(RunError), atomic_path(fifo) as tmp:
        tmp.write_text("x")
    assert fifo.is_fifo() and os.listdir(tmp_path) == ["pipe"]


def test_the_temporary_file_keeps_the_ending_and_stale_ones_are_removed(tmp_path: Path):
    with atomic_path(tmp_path / "model.pt2") as tmp:
        assert tmp.name == f".model.pt2.tmp-{os.getpid()}.pt2"
        tmp.write_text("x")
    assert (tmp_path / "model.pt2").read_text() == "x"
    stale = tmp_path / ".model.pt2.tmp-999999999.pt2"
    old_style = tmp_path / ".model.pt2.tmp-999999998"
    live = tmp_path / f".other.pt2.tmp-{os.getpid()}.pt2"
    for path in (stale, old_style, live):
        path.write_text("")
    assert sorted(p.name for p in remove_stale_temporaries(tmp_path)) == sorted([stale.name, old_style.name])
    assert live.exists() and not stale.exists() and not old_style.exists()


def test_torch_export_save_through_atomic_path_gives_no_warning(tmp_path: Path, capfd: pytest.CaptureFixture):
    import torch

    program = torch.export.export(torch.nn.Linear(2, 1), (torch.zeros(1, 2),))
    capfd.readouterr()
    with atomic_path(tmp_path / "model.pt2") as tmp:
        torch.export.save(program, str(tmp))  # torch logs a warning unless the name ends in .pt2
    assert capfd.readouterr().err == ""
    assert torch.export.load(str(tmp_path / "model.pt2")) is not None


def test_scores_files_round_trip_and_are_the_same_bytes_for_the_same_scores(tmp_path: Path) -> None:
    import numpy as np

    from unisal.io import read_scores, write_scores_atomic

    index, scores = np.array([7, 3, 9]), np.array([0.25, 1e6, -0.5])
    write_scores_atomic(tmp_path / "a" / "round_1.npz", index, scores)
    write_scores_atomic(tmp_path / "b.npz", index, scores)
    assert (tmp_path / "a" / "round_1.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    got_index, got = read_scores(tmp_path / "b.npz")
    assert got_index.tolist() == [7, 3, 9] and got.dtype == np.float16
    assert got.tolist() == [0.25, 65504.0, -0.5]  # clipped to float16's range, not inf
    with pytest.raises(ValueError, match="do not match"):
        write_scores_atomic(tmp_path / "c.npz", index, scores[:2])
