"""``unisal cache``: list and clear the decoded-image and feature caches."""

from __future__ import annotations

from pathlib import Path

import click


def _folder(cache_dir: str | None) -> Path:
    from unisal.data.cache import default_cache_dir

    return Path(cache_dir) if cache_dir else default_cache_dir()


CACHE_DIR = click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    help="Cache folder (default: $UNISAL_CACHE or ~/.cache/unisal).",
)


@click.group()
def cache() -> None:
    """The decoded-image and feature caches: what they hold, and removing them."""


@cache.command("ls")
@CACHE_DIR
def ls(cache_dir: str | None) -> None:
    """List every cache with its size."""
    from unisal.data.cache_admin import describe, list_caches

    folder = _folder(cache_dir)
    entries = list_caches(folder) if folder.is_dir() else []
    for entry in entries:
        click.echo(describe(entry))
    click.echo(f"{len(entries)} caches, {sum(e.bytes for e in entries) / 1e9:.2f} GB in {folder}")


@cache.command()
@click.argument("keys", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Remove every cache.")
@CACHE_DIR
def clear(keys: tuple[str, ...], everything: bool, cache_dir: str | None) -> None:
    """Remove the caches named by KEYS (see `unisal cache ls`), or --all; caches in use are kept."""
    from unisal.data.cache_admin import in_use, list_caches, remove

    folder = _folder(cache_dir)
    entries = list_caches(folder) if folder.is_dir() else []
    if not keys and not everything:
        raise click.ClickException("name the caches to remove (see `unisal cache ls`), or pass --all")
    unknown = sorted(set(keys) - {e.key for e in entries})
    if unknown:
        raise click.ClickException(f"no cache named {', '.join(unknown)} in {folder}")
    freed = 0
    for entry in entries:
        if not everything and entry.key not in keys:
            continue
        if in_use(entry):
            click.echo(f"kept {entry.key}: another process is building it")
            continue
        freed += remove(entry)
        click.echo(f"removed {entry.kind} cache {entry.key}")
    click.echo(f"{freed / 1e9:.2f} GB freed")
