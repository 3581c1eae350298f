"""``printfleet agent screen``: the printer's screen as a line-based terminal menu.

It talks to the agent's LAN API on the printer itself, so it works with the broker and the cloud
unreachable: list the files on the SD card, print one, confirm the plate, pause, resume, cancel,
clear a fault. Starts are made as the screen (``started_by="screen"``), which the agent accepts
only from its own host. Input and output are plain callables, so a test can drive it.
"""

from __future__ import annotations

from collections.abc import Callable

from printfleet.client.lan import (
    LanAuthError,
    LanClient,
    LanError,
    LanRateLimitedError,
    LanRefusedError,
    LanStatus,
)

__all__ = ["MENU", "PrinterScreen"]

MENU = (
    "[p] print a file  [c] confirm plate clear  [z] pause  [r] resume  [x] cancel  "
    "[f] clear fault  [s] status  [q] quit"
)


class PrinterScreen:
    """One person at the printer's screen, until they quit (``q``) or input ends."""

    def __init__(
        self,
        client: LanClient,
        *,
        read_line: Callable[[str], str] = input,
        write: Callable[[str], None] = print,
        person: str = "a person at the printer",
    ) -> None:
        self.client = client
        self._read = read_line
        self._write = write
        self._person = person

    def run(self) -> int:
        """Show the menu and act on choices; returns an exit status (1 if the printer is
        unreachable or the access code is wrong)."""
        try:
            self._show(self.client.status())
        except (LanAuthError, LanRateLimitedError) as error:
            self._write(f"Access refused: {error.detail}")
            return 1
        except LanError as error:
            self._write(f"Cannot reach the printer: {error.detail}")
            return 1
        while True:
            try:
                choice = self._read(f"{MENU}\n> ").strip().lower()
            except EOFError:
                return 0
            if choice in {"q", "quit", "exit"}:
                return 0
            try:
                self._choose(choice)
            except LanRefusedError as error:
                self._write(f"Refused by the printer ({error.reason}): {error.detail}")
            except LanError as error:
                self._write(f"Error: {error.detail}")

    def _choose(self, choice: str) -> None:
        client = self.client
        match choice:
            case "p":
                self._print()
            case "c":
                client.confirm_plate(self._person)
                self._write("Plate confirmed clear.")
            case "z":
                client.pause()
                self._write("Paused.")
            case "r":
                client.resume()
                self._write("Resumed.")
            case "x":
                client.cancel()
                self._write("Cancelled.")
            case "f":
                client.clear_fault(self._person)
                self._write("Fault cleared.")
            case "s" | "":
                self._show(client.status())
            case _:
                self._write(f"Unknown choice {choice!r}.")

    def _print(self) -> None:
        files = self.client.files()
        if not files:
            self._write("The SD card holds no files.")
            return
        for number, stored in enumerate(files, start=1):
            self._write(f"  {number}. {stored.name} ({stored.size} bytes)")
        try:
            answer = self._read("File number (empty: back)> ").strip()
        except EOFError:
            return
        if not answer:
            return
        if not answer.isdigit() or not 1 <= int(answer) <= len(files):
            self._write(f"No file number {answer!r}.")
            return
        name = files[int(answer) - 1].name
        job = self.client.print_file(name, started_by="screen")
        self._write(f"Printing {job.file} (job {job.job_id}).")

    def _show(self, status: LanStatus) -> None:
        line = f"{status.printer_id} ({status.model}): {status.status}"
        if status.file is not None:
            line += f" {status.file}"
        if status.progress is not None:
            line += f" {status.progress.percent}%"
        line += f" | plate {status.plate}"
        line += f" | hotend {status.hotend_c:.0f} °C, bed {status.bed_c:.0f} °C"
        line += " | cloud link up" if status.broker_connected else " | cloud link down"
        self._write(line)
        if status.fault is not None:
            self._write(f"THERMAL FAULT: {status.fault} — fix the cause, then clear it [f].")
