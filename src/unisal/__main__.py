"""``python -m unisal`` is the ``unisal`` command."""

from unisal.cli.main import cli

if __name__ == "__main__":
    cli()
