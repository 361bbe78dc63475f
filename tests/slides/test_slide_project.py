"""Projects on slides: `project init --slides`, labels from QuPath GeoJSON regions, a round, the
heatmap and per-slide shares, the GeoJSON export read back, and the app's pictures of a tile's
slide; on synthetic slides whose two tissues (a disc and a band) are known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image

from unisal.app.files import check_images
from unisal.app.geojson import read_regions
from unisal.app.project import open_project
from unisal.app.server import TOKEN_HEADER, create_app
from unisal.app.store import ProjectError
from unisal.cli.main import cli
from unisal.data.slides import parse_tile_id

from .synthetic import BAND, DISC, two_tissues

CLASSES = "TUM,STR"
SETTINGS = '{"data": {"image_size": 32}}'


def regions(tum: tuple[int, int, int, int], strm: tuple[int, int, int, int]) -> dict:
    """A QuPath-style FeatureCollection of two rectangles (x0, y0, x1, y1, level-0 px)."""

    def feature(name: str, box: tuple[int, int, int, int], colour: list[int]) -> dict:
        x0, y0, x1, y1 = box
        ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
        return {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"objectType": "annotation", "classification": {"name": name, "color": colour}},
        }

    return {
        "type": "FeatureCollection",
        "features": [feature("TUM", tum, [200, 0, 0]), feature("STR", strm, [0, 150, 0])],
    }


def in_disc(x: int, y: int, side: int = 224) -> bool:
    cx, cy, r = DISC
    return (x + side / 2 - cx) ** 2 + (y + side / 2 - cy) ** 2 < r**2


@pytest.fixture
def slides(tmp_path: Path) -> Path:
    folder = tmp_path / "slides"
    folder.mkdir()
    two_tissues(folder / "a.tif")
    two_tissues(folder / "b.tif", seed=1)
    return folder


@pytest.fixture
def project(slides: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "p"
    result = CliRunner().invoke(
        cli, ["project", "init", str(folder), "--slides", str(slides), "--classes", CLASSES]
    )
    assert result.exit_code == 0, result.output
    return folder


def test_init_makes_a_project_of_the_tiles_of_every_slide(project: Path, slides: Path) -> None:
    store = open_project(project)
    paths = [r["path"] for r in store.images()]
    assert {p.split("::")[0] for p in paths} == {"a.tif", "b.tif"}
    assert len(paths) == 2 * len([p for p in paths if p.startswith("a.tif")])
    # one group per slide: no split crosses a slide
    groups = {r["path"].split("::")[0]: set() for r in store.images()}
    for r in store.images():
        groups[r["path"].split("::")[0]].add(r["grp"])
    assert all(len(g) == 1 for g in groups.values()) and groups["a.tif"] != groups["b.tif"]
    assert (project / "tiles.csv").is_file() and not (project / ".init-tiles").exists()
    check_images(store)  # unchanged slides pass
    with (slides / "b.tif").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ProjectError, match="changed since"):
        check_images(store)


def test_init_on_slides_refuses_what_it_cannot_use(slides: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    no_classes = runner.invoke(cli, ["project", "init", str(tmp_path / "q"), "--slides", str(slides)])
    assert no_classes.exit_code != 0 and "--classes is needed" in no_classes.output
    both = runner.invoke(
        cli,
        [
            "project",
            "init",
            str(tmp_path / "q"),
            "--slides",
            str(slides),
            "--images",
            str(slides),
            "--classes",
            "A,B",
        ],
    )
    assert both.exit_code != 0 and "--images or --slides" in both.output
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(
        cli, ["project", "init", str(tmp_path / "q"), "--slides", str(tmp_path / "empty"), "--classes", "A,B"]
    )
    assert empty.exit_code != 0 and "no slides" in empty.output and "Traceback" not in empty.output
    # the failed init left a folder the corrected command can use
    ok = runner.invoke(
        cli, ["project", "init", str(tmp_path / "q"), "--slides", str(slides), "--classes", "A,B"]
    )
    assert ok.exit_code == 0, ok.output


def test_regions_label_the_tiles_they_cover_and_conflicts_are_reported(project: Path, tmp_path: Path) -> None:
    cx, cy, r = DISC
    file = tmp_path / "a.geojson"  # named after its slide, as QuPath scripts name exports
    file.write_text(json.dumps(regions((cx - r, cy - r, cx + r, cy + r), BAND)))
    result = CliRunner().invoke(cli, ["project", "import", str(project), str(file)])
    assert result.exit_code == 0, result.output
    labels = open_project(project).labels()
    assert labels and all(p.startswith("a.tif") for p in labels)
    for path, (name, _, _) in labels.items():
        _, x, y, *_ = parse_tile_id(path)
        assert name == ("TUM" if in_disc(x, y) or x < BAND[0] - 224 else "STR"), path
    assert {n for n, _, _ in labels.values()} == {"TUM", "STR"}
    # overlapping regions of two classes: the tiles under both are reported, not labelled
    overlap = tmp_path / "overlap.geojson"
    overlap.write_text(json.dumps(regions((2200, 600, 3000, 2400), (2200, 600, 3600, 2400))))
    again = CliRunner().invoke(cli, ["project", "import", str(project), str(overlap), "--slide", "b"])
    assert again.exit_code == 0 and "covered by regions of two classes" in again.output, again.output
    b_labels = {p: v[0] for p, v in open_project(project).labels().items() if p.startswith("b.tif")}
    assert b_labels and set(b_labels.values()) == {"STR"}
    assert all(parse_tile_id(p)[1] >= 3000 - 112 for p in b_labels)


def test_region_files_with_unknown_classes_or_no_slide_change_nothing(project: Path, tmp_path: Path) -> None:
    data = regions((0, 0, 2000, 3000), BAND)
    data["features"][0]["properties"]["classification"]["name"] = "Tumor"
    file = tmp_path / "regions.geojson"
    file.write_text(json.dumps(data))
    unknown = CliRunner().invoke(cli, ["project", "import", str(project), str(file), "--slide", "a"])
    assert unknown.exit_code != 0 and "'Tumor'" in unknown.output and "TUM, STR" in unknown.output
    file.write_text(json.dumps(regions((0, 0, 2000, 3000), BAND)))
    which = CliRunner().invoke(cli, ["project", "import", str(project), str(file)])
    assert which.exit_code != 0 and "say which with --slide" in which.output
    assert open_project(project).labels() == {}


def test_a_round_on_region_labels_maps_the_slide_and_shares_its_tissue(project: Path, tmp_path: Path) -> None:
    cx, cy, r = DISC
    for name in ("a", "b"):  # regions inside each tissue: the tiles at their edges stay to query
        file = tmp_path / f"{name}.geojson"
        file.write_text(
            json.dumps(regions((cx - 450, cy - 450, cx + 450, cy + 450), (2450, 850, 3350, 2150)))
        )
        assert CliRunner().invoke(cli, ["project", "import", str(project), str(file)]).exit_code == 0
    store = open_project(project)
    config = json.loads(SETTINGS)
    config["data"]["cache_dir"] = str(tmp_path / "cache")
    store.set_settings(store.settings() | {"config": config, "tiles_per_slide": 3})
    round_ = CliRunner().invoke(cli, ["project", "round", str(project)])
    assert round_.exit_code == 0, round_.output
    queued = [
        r[0] for r in store.conn.execute("SELECT images.path FROM queue JOIN images ON images.id = image_id")
    ]
    assert sorted(p.split("::")[0] for p in queued) == ["a.tif"] * 3 + ["b.tif"] * 3  # the cap, 3 per slide
    out = tmp_path / "map.png"
    heat = CliRunner().invoke(cli, ["heatmap", "--project", str(project), "--slide", "a", "--out", str(out)])
    assert heat.exit_code == 0, heat.output
    picture = np.asarray(Image.open(out).convert("RGB"))
    assert picture.shape[0] > 300 and picture.shape[1] > 600
    shares = tmp_path / "shares.csv"
    result = CliRunner().invoke(cli, ["shares", "--project", str(project), "--out", str(shares)])
    assert result.exit_code == 0, result.output
    rows = [line.split(",") for line in shares.read_text().splitlines()[1:]]
    share = {(s, c): float(v) for s, c, _, v, _ in rows}
    # the disc is pi * 700^2 px, the band 1400 x 1800 px: TUM is 38 % of the tissue; the model
    # (32 px tiles, a few labels) may call some half-glass tiles at the disc's edge otherwise
    for slide in ("a", "b"):
        assert share[(slide, "TUM")] + share[(slide, "STR")] == pytest.approx(1.0, abs=1e-3)
        assert 0.2 < share[(slide, "TUM")] < 0.5
    missing = CliRunner().invoke(
        cli, ["heatmap", "--project", str(project), "--slide", "c", "--out", str(out)]
    )
    assert missing.exit_code != 0 and "no slide called 'c'" in missing.output and "a, b" in missing.output

    # the GeoJSON export: labels as annotations, predictions as detections; read back, same labels
    exported = tmp_path / "a-export.geojson"
    result = CliRunner().invoke(
        cli,
        ["project", "export", str(project), "--format", "geojson", "--slide", "a", "--out", str(exported)],
    )
    assert result.exit_code == 0, result.output
    features = json.loads(exported.read_text())["features"]
    kinds = {f["properties"]["objectType"] for f in features}
    assert kinds <= {"annotation", "detection"} and "annotation" in kinds
    before = open_project(project).labels()
    regions_back, _ = read_regions(exported)
    assert len(regions_back) == sum(1 for p in before if p.startswith("a.tif"))
    fresh = tmp_path / "p2"
    slides = Path(open_project(project).settings()["image_root"])
    assert (
        CliRunner()
        .invoke(cli, ["project", "init", str(fresh), "--slides", str(slides), "--classes", CLASSES])
        .exit_code
        == 0
    )
    back = CliRunner().invoke(cli, ["project", "import", str(fresh), str(exported), "--slide", "a"])
    assert back.exit_code == 0, back.output
    assert {p: v[0] for p, v in open_project(fresh).labels().items()} == {
        p: v[0] for p, v in before.items() if p.startswith("a.tif")
    }

    # the app shows a tile's surroundings, its place on the slide and the slide's map
    client = TestClient(create_app(project, "t0ken", hosts={"testserver"}))
    client.headers[TOKEN_HEADER] = "t0ken"
    item = client.post("/api/next", json={"annotator": "ann"}).json()
    assert item is not None and item["tile"] is True
    for kind in ("image", "context", "overview", "map"):
        response = client.get(f"/api/{kind}/{item['image_id']}")
        assert response.status_code == 200 and response.headers["content-type"] == "image/png", kind
    context = Image.open(__import__("io").BytesIO(client.get(f"/api/context/{item['image_id']}").content))
    assert context.size == (3 * 224, 3 * 224)


def test_coverage_and_shares_have_known_answers() -> None:
    from unisal.app.geojson import Region, coverage
    from unisal.app.slidemap import SlideMap, class_shares

    boxes = np.array([[0, 0, 100], [100, 0, 100], [200, 0, 100]], np.float64)
    half = Region("A", np.array([[0, 0], [150, 0], [150, 100], [0, 100]], np.float64))
    holed = Region(
        "B",
        np.array([[200, 0], [300, 0], [300, 100], [200, 100]], np.float64),
        [np.array([[200, 0], [250, 0], [250, 100], [200, 100]], np.float64)],
    )
    on_tissue = np.ones((3, 64), bool)
    share = coverage(boxes, [half, holed], ["A", "B"], on_tissue)
    assert share.tolist() == [[1.0, 0.0], [0.5, 0.0], [0.0, 0.5]]
    on_tissue[1, :] = False  # no tissue point: every point counts
    on_tissue[1, np.arange(64) % 8 < 4] = True  # ... else only the tissue ones (the left half: in A)
    assert coverage(boxes, [half], ["A"], on_tissue)[1, 0] == 1.0
    m = SlideMap(
        "s.tif", np.array([[0, 0, 10], [10, 0, 10], [20, 0, 20]]), np.array([1.0, 0.5, 1.0]),
        np.array([0, 1, 1]), np.ones(3), np.full(3, np.nan), np.zeros(3, bool), np.zeros(3, bool),
        ["A", "B"], "",
    )  # fmt: skip
    assert class_shares(m) == pytest.approx({"A": 100 / 550, "B": 450 / 550})


def test_a_simulation_on_a_tile_table_labelled_by_regions_is_mapped(tmp_path: Path) -> None:
    folder = tmp_path / "slides"
    regions_dir = tmp_path / "regions"
    folder.mkdir()
    regions_dir.mkdir()
    cx, cy, r = DISC
    for k, name in enumerate("abcd"):
        two_tissues(folder / f"{name}.tif", seed=k)
        (regions_dir / f"{name}.geojson").write_text(
            json.dumps(regions((cx - r, cy - r, cx + r, cy + r), BAND))
        )
    table = tmp_path / "tiles.csv"
    runner = CliRunner()
    assert (
        runner.invoke(cli, ["tiles", str(folder), "--out", str(table), "--mpp", "1.0", "--quiet"]).exit_code
        == 0
    )
    run = tmp_path / "run"
    result = runner.invoke(cli, [
        "simulate", "--data", str(table), "--regions", str(regions_dir), "--image-size", "32",
        "--cache-dir", str(tmp_path / "cache"), "--initial", "8", "--budget", "4", "--rounds", "1",
        "--out", str(run), "--quiet",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    splits = (run / "splits.csv").read_text()
    assert "TUM" in splits and "STR" in splits
    out = tmp_path / "run-map.png"
    heat = runner.invoke(cli, ["heatmap", "--run", str(run), "--slide", "c", "--out", str(out)])
    assert heat.exit_code == 0, heat.output
    assert Image.open(out).size[0] > 600
    wrong = runner.invoke(
        cli,
        [
            "simulate",
            "--data",
            str(table),
            "--regions",
            str(tmp_path / "cache"),
            "--out",
            str(tmp_path / "r2"),
        ],
    )
    assert wrong.exit_code != 0 and "label no tile" in wrong.output


def test_the_cold_start_batch_keeps_the_cap_per_slide(slides: Path, tmp_path: Path) -> None:
    folder = tmp_path / "capped"
    args = [
        "project",
        "init",
        str(folder),
        "--slides",
        str(slides),
        "--classes",
        CLASSES,
        "--tiles-per-slide",
        "2",
    ]
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert CliRunner().invoke(cli, ["project", "round", str(folder)]).exit_code == 0
    store = open_project(folder)
    queued = [
        r[0] for r in store.conn.execute("SELECT images.path FROM queue JOIN images ON images.id = image_id")
    ]
    assert sorted(p.split("::")[0] for p in queued) == ["a.tif", "a.tif", "b.tif", "b.tif"]
