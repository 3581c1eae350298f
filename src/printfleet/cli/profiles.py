"""Saved logins (profiles) and the SDK client a command gets from one, or from
``PRINTFLEET_URL`` / ``PRINTFLEET_TOKEN``."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import tomli_w
import typer

from printfleet.cli.failures import AUTH, USAGE, CliError, reported
from printfleet.client import Client, RetryPolicy

PROFILE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEFAULT_PROFILE = "default"

ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile",
        "-p",
        envvar="PRINTFLEET_PROFILE",
        help="Which saved login to use (see `printfleet login`); default: the last one saved.",
        show_default=False,
    ),
]


def config_path() -> Path:
    """Where profiles are kept: ``$XDG_CONFIG_HOME/printfleet/client.toml``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "printfleet" / "client.toml"


@dataclass
class Profiles:
    """The saved logins: a server URL and a token each (never a password)."""

    default: str | None = None
    entries: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Profiles:
        """The profiles in ``path`` (none if it does not exist)."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise CliError(f"cannot read {path}: {error}", USAGE) from None
        entries = data.get("profiles", {})
        if not isinstance(entries, dict):
            raise CliError(f"{path}: [profiles] must be a table", USAGE)
        clean = {
            name: {k: v for k, v in values.items() if isinstance(v, str)}
            for name, values in entries.items()
            if isinstance(values, dict)
        }
        default = data.get("default")
        return cls(default if isinstance(default, str) else None, clean)

    def save(self, path: Path) -> None:
        """Write to ``path``, readable by its owner only (it holds tokens)."""
        data: dict[str, Any] = {"default": self.default} if self.default else {}
        data["profiles"] = {
            name: dict(sorted(values.items())) for name, values in sorted(self.entries.items())
        }
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_name(path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write(tomli_w.dumps(data))
        temporary.replace(path)


@dataclass(frozen=True)
class Login:
    """Where to send requests and as whom."""

    url: str
    token: str | None
    profile: str | None


def login_for(profile: str | None) -> Login:
    """The login to use: the environment's, else the profile named (or the default one)."""
    env_url, env_token = os.environ.get("PRINTFLEET_URL"), os.environ.get("PRINTFLEET_TOKEN")
    saved = Profiles.load(config_path())
    name = profile or saved.default or DEFAULT_PROFILE
    entry = saved.entries.get(name, {})
    if profile is not None and not entry and not env_url:
        raise CliError(
            f"no profile {profile!r} in {config_path()}: "
            f"log in with `printfleet login URL --email you@example.org --profile {profile}`",
            AUTH,
        )
    url = env_url or entry.get("url")
    if not url:
        raise CliError(
            "not logged in: run `printfleet login URL --email you@example.org`, "
            "or set PRINTFLEET_URL and PRINTFLEET_TOKEN",
            AUTH,
        )
    return Login(url, env_token or entry.get("token"), name if entry else None)


def client_for(login: Login) -> Client:
    """An SDK client for ``login``, tuned for a person waiting at a terminal."""
    try:
        # A person is waiting: give up on long server-requested waits and say so instead.
        return Client(login.url, login.token, policy=RetryPolicy(max_retry_after=10.0))
    except ValueError as error:
        raise CliError(str(error), USAGE) from None


def connected(profile: str | None) -> tuple[Login, Client]:
    """The login and a client for it; a failure ends the command with its exit status."""
    with reported():
        login = login_for(profile)
        return login, client_for(login)
