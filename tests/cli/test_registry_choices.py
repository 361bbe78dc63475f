"""The CLI's and the config's choices come from the registries, not from hand-kept lists
(issue 8, item 9): strategies, learners, data readers and label exports."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from unisal.app.project import LABEL_EXPORTS
from unisal.cli.main import cli
from unisal.config import ConfigError
from unisal.data.catalogue import Catalogue
from unisal.data.items import FileItems
from unisal.data.readers import READERS, load_catalogue
from unisal.learners import learner_names
from unisal.query import strategy_names
from unisal.query.base import STRATEGIES
from unisal.settings import resolve_config


def _help(*command: str) -> str:
    result = CliRunner().invoke(cli, [*command, "--help"], terminal_width=10_000)
    assert result.exit_code == 0, result.output
    return result.output


def test_help_lists_every_registered_strategy_learner_and_format() -> None:
    text = _help("simulate")
    for name in [*strategy_names(), *learner_names(), "auto", *READERS.names()]:
        assert name in text
    assert "[auto|csv|folder|json|npz|prefix|tiles]" in text
    assert "unlabelled|csv|folder|json|npz|prefix" in _help("project", "init")
    assert "|".join(LABEL_EXPORTS) in _help("project", "export")
    assert "[finetune|frozen]" in _help("supervised")


@pytest.mark.parametrize(
    ("flag", "value", "hint", "known"),
    [
        ("--strategy", "entrpy", "entropy", strategy_names()),
        ("--learner", "frozn", "frozen", learner_names()),
        ("--format", "jsn", "json", ["auto", *READERS.names()]),
    ],
)
def test_a_typo_is_refused_naming_the_registered_choices(
    make_image_folder, tmp_path: Path, flag: str, value: str, hint: str, known: list[str]
) -> None:
    root = make_image_folder(classes={"a": 3, "b": 3})
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["simulate", "--data", str(root), flag, value, "--out", str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"Error: Invalid value for '{flag}': unknown ")
    assert f"'{value}'; did you mean '{hint}'? expected one of {known}" in last
    assert not out.exists()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"query": {"strategy": "entrpy"}}, f"config key 'query.strategy' must be one of {strategy_names()}"),
        ({"learner": {"name": "frozn"}}, f"config key 'learner.name' must be one of {learner_names()}"),
        ({"data": {"format": "tif"}}, "config key 'data.format' must be one of ['auto', 'csv', 'folder'"),
    ],
)
def test_yaml_names_are_checked_against_the_registries(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        resolve_config("cpu", values)
    assert str(excinfo.value).startswith(message)


def test_a_newly_registered_reader_is_a_choice_everywhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A reader registered by a plug-in is accepted by the config, listed by --help, and used."""
    import numpy as np

    def read_tsv(path: Path) -> Catalogue:
        rows = [line.split("\t") for line in Path(path).read_text().splitlines()]
        names = sorted({label for _, label in rows})
        labels = np.array([names.index(label) for _, label in rows])
        return Catalogue(
            FileItems(tuple(p for p, _ in rows)), labels, np.arange(len(rows)), names, str(tmp_path)
        )

    monkeypatch.setitem(READERS._items, "tsv", read_tsv)
    assert resolve_config("cpu", {"data": {"format": "tsv"}}).data.format == "tsv"
    assert "tsv" in _help("simulate") and "tsv" in _help("project", "init")
    (tmp_path / "list.tsv").write_text("x.png\tTUM\ny.png\tSTR\n")
    catalogue = load_catalogue(tmp_path / "list.tsv", "tsv")
    assert catalogue.class_names == ["STR", "TUM"] and catalogue.labels.tolist() == [1, 0]
    monkeypatch.delitem(READERS._items, "tsv")
    with pytest.raises(ConfigError, match="'tsv'"):
        resolve_config("cpu", {"data": {"format": "tsv"}})


def test_a_newly_registered_strategy_is_accepted_by_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(STRATEGIES._items, "probe", STRATEGIES.get("random"))
    assert resolve_config("cpu", {"query": {"strategy": "probe"}}).query.strategy == "probe"
    assert "probe" in _help("simulate")


def test_the_library_names_an_unknown_format_like_the_cli(tmp_path: Path) -> None:
    from unisal.data.catalogue import DataError

    with pytest.raises(DataError) as excinfo:
        load_catalogue(tmp_path, "jsn")
    assert str(excinfo.value) == (
        f"unknown data format 'jsn'; did you mean 'json'? expected one of {READERS.names()}"
    )
