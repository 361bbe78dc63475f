"""Slides (unisal.data.slides, unisal.data.tiling, `unisal tiles`): synthetic pyramidal TIFFs with
known tissue, so that every path runs without the real slides; the real ones where present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from unisal.cli.main import cli
from unisal.data.items import kind_of, open_items
from unisal.data.readers import detect_format, load_catalogue
from unisal.data.slides import SlideTiles, open_slide, otsu_threshold, parse_tile_id, tile_grid, tissue_mask
from unisal.data.tiling import TilingSettings, tile_slides
from unisal.errors import SlideError

from .synthetic import TISSUE, pyramid

WSI = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "wsi"


def test_otsu_splits_two_populations_and_the_mask_finds_the_disc() -> None:
    values = np.concatenate([np.full(500, 10), np.full(300, 200)]).astype(np.uint8)
    assert 10 <= otsu_threshold(values) < 200
    thumb = np.full((300, 400, 3), 242, np.uint8)
    yy, xx = np.ogrid[:300, :400]
    disc = (yy - 150) ** 2 + (xx - 120) ** 2 < 60**2
    thumb[disc] = TISSUE
    thumb[10:12, 390:392] = TISSUE  # a speck: removed
    mask = tissue_mask(thumb)
    assert mask[disc].mean() > 0.99 and mask[~disc].mean() < 0.001


def test_a_pyramid_is_tiled_where_its_tissue_is(tmp_path: Path) -> None:
    slide = pyramid(tmp_path / "s1.tif")
    out = tmp_path / "tiles.csv"
    counts = tile_slides([slide], out, TilingSettings(size=224, mpp=0.5))
    catalogue = load_catalogue(out)  # detected as a tile table
    assert detect_format(out) == "tiles" and counts[str(slide.resolve())] == len(catalogue) > 0
    ids = catalogue.ids
    for item_id in ids:  # every kept tile is mostly inside the disc: its centre near it
        _, x, y, level, read, size = parse_tile_id(item_id)
        assert (level, read, size) == (0, 224, 224)
        assert (x + 112 - 1200) ** 2 + (y + 112 - 1500) ** 2 < (600 + 160) ** 2
    # area of the disc / area of a tile, less the edge tiles under half tissue: about 22
    assert 15 <= len(catalogue) <= 30
    tile = catalogue.items.read(0)
    assert tile.shape == (224, 224, 3) and (np.abs(tile.astype(int) - TISSUE).sum(axis=2) < 30).mean() > 0.5
    assert isinstance(open_items(ids), SlideTiles) and kind_of(ids[0]) == "tile"
    assert len(set(catalogue.groups.tolist())) == 1  # one slide, one group


def test_coarser_tiles_read_a_lower_level_and_finer_ones_are_refused(tmp_path: Path) -> None:
    slide = pyramid(tmp_path / "s.tif")
    handle = open_slide(slide)
    grid = tile_grid(handle, slide, size=224, mpp=2.0, magnification=None, assume_mpp=None)
    assert (grid.level, grid.read, grid.step) == (1, 224, 896)  # 4x coarser: level 1 read as is
    assert tile_grid(handle, slide, size=224, mpp=None, magnification=10, assume_mpp=None).step == 448
    with pytest.raises(SlideError, match="scanned at 0.5 mpp: it cannot give tiles at 0.25 mpp"):
        tile_grid(handle, slide, size=224, mpp=0.25, magnification=None, assume_mpp=None)
    coarse = tmp_path / "coarse.csv"
    tile_slides([slide], coarse, TilingSettings(size=224, mpp=2.0))
    tiles = load_catalogue(coarse)
    assert 0 < len(tiles) < 5 and tiles.items.read(0).shape == (224, 224, 3)


def test_bad_slides_get_one_line_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    (tmp_path / "broken.svs").write_bytes(b"II*\x00garbage")
    result = runner.invoke(cli, ["tiles", str(tmp_path / "broken.svs"), "--out", str(tmp_path / "t.csv")])
    assert result.exit_code == 1 and "broken.svs" in result.output and "Traceback" not in result.output
    pyramid(tmp_path / "nompp.tif", mpp=None)
    result = runner.invoke(cli, ["tiles", str(tmp_path / "nompp.tif"), "--out", str(tmp_path / "t.csv")])
    assert (
        result.exit_code == 1
        and "records neither its resolution (mpp) nor its objective power" in result.output
    )
    result = runner.invoke(
        cli, ["tiles", str(tmp_path / "nompp.tif"), "--out", str(tmp_path / "t.csv"), "--assume-mpp", "0.5"]
    )
    assert result.exit_code == 0, result.output
    pyramid(tmp_path / "glass.tif", disc=False)
    result = runner.invoke(cli, ["tiles", str(tmp_path / "glass.tif"), "--out", str(tmp_path / "g.csv")])
    assert result.exit_code == 1 and "no tiles: glass.tif show no tissue" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(cli, ["tiles", str(empty), "--out", str(tmp_path / "e.csv")])
    assert result.exit_code == 1 and "no slides" in result.output
    assert not (tmp_path / "g.csv").exists() and not (tmp_path / "e.csv").exists()


def test_a_killed_tiling_reuses_the_slides_it_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unisal.data import tiling

    slides = [pyramid(tmp_path / "a.tif"), pyramid(tmp_path / "b.tif")]
    out = tmp_path / "tiles.csv"
    real, calls = tiling.tile_slide, []

    def dies_on_b(path: Path, settings: TilingSettings):  # type: ignore[no-untyped-def]
        calls.append(path.name)
        if path.name == "b.tif":
            raise KeyboardInterrupt
        return real(path, settings)

    monkeypatch.setattr(tiling, "tile_slide", dies_on_b)
    with pytest.raises(KeyboardInterrupt):
        tile_slides(slides, out, TilingSettings())
    assert not out.exists() and calls == ["a.tif", "b.tif"]
    monkeypatch.setattr(tiling, "tile_slide", lambda p, s: (calls.append(p.name), real(p, s))[1])
    counts = tile_slides(slides, out, TilingSettings())
    assert calls[2:] == ["b.tif"]  # a.tif came from its finished part
    assert (
        list(counts.values())[0] == list(counts.values())[1] > 0
        and not out.with_name("tiles.csv.parts").exists()
    )


def test_patients_group_the_tiles_of_their_slides(tmp_path: Path) -> None:
    slides = [pyramid(tmp_path / n) for n in ("a.tif", "b.tif", "c.tif")]
    (tmp_path / "patients.csv").write_text("slide,patient\na.tif,P1\nb.tif,P1\nc.tif,P2\n")
    result = CliRunner().invoke(
        cli,
        [
            "tiles",
            *map(str, slides),
            "--out",
            str(tmp_path / "t.csv"),
            "--slides-csv",
            str(tmp_path / "patients.csv"),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    catalogue = load_catalogue(tmp_path / "t.csv")
    by_slide = {
        i.rpartition("::tile/")[0].rsplit("/", 1)[-1]: int(g)
        for i, g in zip(catalogue.ids, catalogue.groups, strict=True)
    }
    assert by_slide["a.tif"] == by_slide["b.tif"] != by_slide["c.tif"]


@pytest.mark.skipif(not WSI.is_dir(), reason=f"no real slides at {WSI}")
def test_the_real_slides_are_tiled_on_their_tissue(tmp_path: Path) -> None:
    counts = tile_slides([WSI], tmp_path / "t.csv", TilingSettings(assume_mpp=0.5), masks=tmp_path / "masks")
    assert all(n > 0 for n in counts.values()) and len(counts) == 2
    assert len(list((tmp_path / "masks").glob("*-tissue.png"))) == 2
    catalogue = load_catalogue(tmp_path / "t.csv")
    assert catalogue.items.read(len(catalogue) - 1).shape == (224, 224, 3)


def test_a_labelled_tile_table_is_decoded_into_the_image_cache_from_the_slides(tmp_path: Path) -> None:
    """simulate / benchmark read a tile table like any data: tiles come from the slides, decoded
    once at the run's image size; a split never crosses a slide (its group)."""
    from unisal.config import DataConfig
    from unisal.data.prepare import prepare_data
    from unisal.io import read_csv_rows, write_csv_atomic

    slides = [pyramid(tmp_path / n) for n in ("a.tif", "b.tif", "c.tif", "d.tif", "e.tif")]
    tile_slides(slides, tmp_path / "t.csv", TilingSettings())
    fields, rows = read_csv_rows(tmp_path / "t.csv")
    write_csv_atomic(
        tmp_path / "labelled.csv",
        [*fields, "label"],
        [[*r.values(), "tumour" if k % 2 else "stroma"] for k, r in enumerate(rows)],
    )
    data = prepare_data(
        DataConfig(
            path=str(tmp_path / "labelled.csv"),
            image_size=32,
            test_fraction=0.4,
            cache_dir=str(tmp_path / "c"),
        ),
        0,
    )
    assert data.catalogue.class_names == ["stroma", "tumour"] and data.store.array.shape[1:] == (32, 32, 3)
    np.testing.assert_array_equal(data.store.get(np.array([0]))[0], data.catalogue.items.read_at(0, 32))
    for group in np.unique(data.catalogue.groups):
        assert len(set(data.split[data.catalogue.groups == group].tolist())) == 1


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_a_flat_tiff_is_read_through_tifffile_with_the_pyramids_pixels(tmp_path: Path, compression) -> None:
    """OpenSlide refuses an untiled TIFF; tifffile reads it (memory-mapped when uncompressed),
    and its tiles are the same pixels as the same image's pyramid's."""
    image = np.full((3000, 4000, 3), 242, np.uint8)
    yy, xx = np.ogrid[:3000, :4000]
    image[(yy - 1500) ** 2 + (xx - 1200) ** 2 < 600**2] = TISSUE
    image[::7, ::5, 0] = 200  # texture, so that equal pixels mean the same place
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(
        flat,
        image,
        photometric="rgb",
        compression=compression,
        resolution=(2e4, 2e4),
        resolutionunit="CENTIMETER",
    )
    tiled = tmp_path / "tiled.tif"
    from .synthetic import write_pyramid

    write_pyramid(tiled, image, 0.5)
    slide = open_slide(flat)
    assert type(slide).__name__ == "FlatTiff" and slide.dimensions == (4000, 3000)
    assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(0.5)
    counts = tile_slides([flat], tmp_path / "flat.csv", TilingSettings(size=224, mpp=0.5))
    assert 20 <= counts[str(flat)] <= 30  # the disc: pi 600^2 / 224^2 = 22.5 tiles
    _, x, y, level, read, size = parse_tile_id(load_catalogue(tmp_path / "flat.csv", "tiles").ids[0])
    flat_tile = SlideTiles((f"{flat}::tile/{x},{y},{level},{read},{size}",)).read(0)
    pyramid_tile = SlideTiles((f"{tiled}::tile/{x},{y},0,{read},{size}",)).read(0)
    assert np.array_equal(flat_tile, pyramid_tile)
    edge = np.asarray(slide.read_region((3900, 2900), 0, (224, 224)))
    assert edge[:100, :100, 3].min() == 255 and edge[150:, 150:, 3].max() == 0  # outside: transparent


def test_tiles_stream_from_their_slides_into_the_features_as_the_image_cache_gives_them(
    tmp_path: Path,
) -> None:
    """Issue 18: a tile table's features extracted straight from the slides (no image cache) equal
    those extracted from the decoded-image cache."""
    import torch

    from unisal.config import DataConfig, ModelConfig
    from unisal.data.prepare import decode_catalogue
    from unisal.models.feature_cache import build_feature_cache
    from unisal.models.features import ViewSpec

    slides = [pyramid(tmp_path / n) for n in ("a.tif", "b.tif")]
    tile_slides(slides, tmp_path / "t.csv", TilingSettings())
    stores = {}
    for mode in ("keep", "stream"):
        cfg = DataConfig(path=str(tmp_path / "t.csv"), image_size=32, cache_dir=str(tmp_path / mode),
                         pixel_cache=mode)  # fmt: skip
        # the table has no labels, so a simulation's prepare_data would refuse it: decoded as a project's
        store, bad, _ = decode_catalogue(load_catalogue(cfg.path, "auto", None), cfg, pixels_needed=False)
        assert bad == [] and store.streamed == (mode == "stream")
        stores[mode] = build_feature_cache(
            store, ModelConfig(), spec=ViewSpec("identity"), device=torch.device("cpu"),
            cache_dir=tmp_path / mode, batch_size=5, engine="torch",
        )  # fmt: skip
    assert not list((tmp_path / "stream").glob("*.npy"))  # no tile was written as pixels
    np.testing.assert_array_equal(np.asarray(stores["stream"].array), np.asarray(stores["keep"].array))
