"""``unisal serve``: the labelling web app over a project."""

from __future__ import annotations

import click

from unisal.errors import UnisalError


def _host_names(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """Check each ``--allow-host`` NAME[:PORT] when the command line is parsed."""
    from unisal.app.security import parse_host

    for value in values:
        try:
            parse_host(value)
        except ValueError as error:
            raise click.BadParameter(str(error), ctx=ctx, param=param) from None
    return values


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0: every one)."
)
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535))
@click.option("--token", default=None, help="Access token (default: a new random one, printed with the URL).")
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    callback=_host_names,
    metavar="NAME[:PORT]",
    help="Also answer requests addressed to NAME (a lab's DNS name, a proxy's); repeatable. The "
    "listening address and localhost are always answered, any other Host header is refused.",
)
def serve(folder: str, host: str, port: int, token: str | None, allow_hosts: tuple[str, ...]) -> None:
    """Label the queued patches of project FOLDER in a browser; prints the URL with its access token."""
    from unisal.app.server import serve as run

    try:
        run(folder, host=host, port=port, token=token, allow_hosts=allow_hosts)
    except UnisalError as error:
        raise click.ClickException(str(error)) from error
