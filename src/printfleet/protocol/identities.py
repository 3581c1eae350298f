"""Who is who on the broker (S10): printer ids, broker usernames and MQTT client ids.

Every name lives in a namespace that no other can reach:

- the service's own names all start with ``printfleet``: the cloud's broker user
  ``printfleet-cloud`` and its client ids ``printfleet-cloud.{instance}``;
- a printer id is chosen by a person, so it may not start with ``printfleet`` and may not be one
  of :data:`RESERVED_NAMES`, names a reader of a broker's log would take for an administrator's;
- a printer's broker username and client id are *derived* from its id, never chosen:
  ``printer.{id}``. No printer id contains a ``.`` (:data:`PRINTER_ID_PATTERN`), so no id — and
  no username stored before this scheme, which was the bare id — can equal a derived name; and
  a name that starts with ``printer.`` never starts with ``printfleet``.
"""

import re

PRINTER_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
"""1-63 lower-case letters, digits, ``-`` and ``_``: safe inside a topic and a broker ACL."""

SERVICE_PREFIX = "printfleet"
"""Every name of the service's own starts with this; no printer id may."""

CLOUD_USER = f"{SERVICE_PREFIX}-cloud"
"""The cloud's broker login."""

RESERVED_NAMES = frozenset(
    {
        "admin", "administrator", "anonymous", "broker", "cloud", "guest", "localhost",
        "mosquitto", "mqtt", "nobody", "root", "server", "service", "su", "superuser", "sys",
        "system",
    }
)  # fmt: skip
"""Names refused as printer ids (and as stored broker usernames) besides ``printfleet*``."""

_PRINTER_HEAD = "printer."
_PRINTER_ID = re.compile(PRINTER_ID_PATTERN)


class InvalidPrinterId(ValueError):  # noqa: N818 - reads as the condition
    """A printer id that breaks :data:`PRINTER_ID_PATTERN` or is reserved."""


def is_reserved(name: str) -> bool:
    """Whether ``name`` belongs to the service's namespace (in any letter case)."""
    folded = name.lower()
    return folded.startswith(SERVICE_PREFIX) or folded in RESERVED_NAMES


def check_printer_id(printer_id: str) -> str:
    """``printer_id`` if a person may choose it; raises :class:`InvalidPrinterId` saying why."""
    if not _PRINTER_ID.fullmatch(printer_id):
        msg = (
            f"printer id {printer_id!r} must be 1-63 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
        raise InvalidPrinterId(msg)
    if is_reserved(printer_id):
        msg = (
            f"printer id {printer_id!r} is reserved for the service: ids may not start with "
            f"{SERVICE_PREFIX!r} nor be one of {', '.join(sorted(RESERVED_NAMES))}"
        )
        raise InvalidPrinterId(msg)
    return printer_id


def printer_username(printer_id: str) -> str:
    """The broker username the cloud provisions for a printer."""
    return f"{_PRINTER_HEAD}{printer_id}"


def printer_client_id(printer_id: str) -> str:
    """The MQTT client id a printer's agent connects with.

    A broker lets a new connection with a client id take over the session that holds it; derived
    like the username, a printer's id can never be spelled to take over the cloud's session.
    """
    return f"{_PRINTER_HEAD}{printer_id}"


def cloud_client_id(instance: str) -> str:
    """The MQTT client id of one cloud process (``instance`` is random per process)."""
    return f"{CLOUD_USER}.{instance}"
