"""``printfleet login``: check a server and a token, and save them as a profile."""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from printfleet.cli.failures import USAGE, CliError, reported
from printfleet.cli.output import out
from printfleet.cli.profiles import (
    DEFAULT_PROFILE,
    PROFILE_NAME,
    Login,
    Profiles,
    client_for,
    config_path,
)


def login(
    url: Annotated[str, typer.Argument(help="The server, e.g. https://print.example.org")],
    email: Annotated[
        str | None, typer.Option("--email", "-e", help="Your account's e-mail address.")
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            envvar="PRINTFLEET_PASSWORD", help="Your password (asked for when not given)."
        ),
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="An API token to save instead of logging in.")
    ] = None,
    profile: Annotated[
        str, typer.Option("--profile", "-p", help="The name to save this login under.")
    ] = DEFAULT_PROFILE,
) -> None:
    """Log in to a printfleet server and save the server and a token as a profile.

    With --email, a new token is made from your password (which is never saved); with
    --token, that token is checked and saved. Profiles live in
    $XDG_CONFIG_HOME/printfleet/client.toml (mode 0600); the last one saved is the default.
    """
    with reported(url):
        if not PROFILE_NAME.match(profile):
            raise CliError("a profile name is 1-64 letters, digits, '-' or '_'", USAGE)
        if (email is None) == (token is None):
            raise CliError("log in with either --email (and a password) or --token", USAGE)
        with client_for(Login(url, token, profile)) as client:
            if token is None:
                assert email is not None  # noqa: S101 - checked just above
                if password is None:
                    password = typer.prompt("password", hide_input=True)
                issued = client.login(
                    email, password, token_name=f"cli@{socket.gethostname()}"[:100]
                )
                token, who = issued.token, email
            else:
                client.list_tokens()  # proves the token works (and may read)
                who = "the token's owner"
        saved = Profiles.load(config_path())
        saved.entries[profile] = {"url": client.url, "token": token}
        saved.default = profile
        saved.save(config_path())
        out.print(f"logged in to {client.url} as {who}; saved as profile {profile!r}")
