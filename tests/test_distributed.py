"""``--executor ray`` where Ray is not installed: one line saying how to install it or what to
use instead, never an ImportError's traceback."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from unisal.cli.main import cli
from unisal.distributed import import_ray, ray_session
from unisal.errors import RunError


def test_without_ray_the_ray_executor_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path, make_image_folder
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(RunError, match=r"pip install 'unisal\[ray\]'.*--executor local"):
        import_ray()
    with pytest.raises(RunError), ray_session(None):
        pass
    tiles = make_image_folder(classes={"red": 3, "blue": 3}, size=32)
    args = ["features", "--data", str(tiles), "--image-size", "32", "--cache-dir", str(tmp_path / "cache")]
    result = CliRunner().invoke(cli, [*args, "--executor", "ray", "--quiet"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "--executor ray needs Ray: pip install 'unisal[ray]'" in result.output
    out = tmp_path / "bench"
    result = CliRunner().invoke(
        cli, ["benchmark", "--data", str(tiles), "--image-size", "32", "--executor", "ray", "--out", str(out)]
    )
    assert result.exit_code == 1 and "--executor ray needs Ray" in result.output
    assert not out.exists()  # nothing written: the corrected command starts afresh
