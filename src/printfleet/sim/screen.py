"""The simulated printer screen: it records what the agent shows, and a simulated person answers
its prompts and enters what is loaded (filament slots, nozzle)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from printfleet.agent.hardware import HardwareClock, Loadout, MessageLevel, Prompt, PromptAnswer
from printfleet.sim.materials import SimLoadout, default_loadout

__all__ = ["ScreenMessage", "SimScreen"]

# Enough history for any test or dashboard, bounded so a long-running fleet cannot grow without end.
_HISTORY = 64


@dataclass(frozen=True, slots=True)
class ScreenMessage:
    """A message as it was shown, at `shown_at` on the hardware clock."""

    text: str
    level: MessageLevel
    shown_at: float


class SimScreen:
    """A `Screen` that keeps the last messages and the open prompts.

    `answer` is the simulated person's finger: it accepts only an open prompt's own options, closes
    the prompt, and hands the answer to whoever awaits `next_answer`. `load_material`,
    `unload_material` and `fit_nozzle` are the same finger in the screen's materials menu: they
    change `loadout` (a single spool with PLA and a 0.4 mm nozzle unless one is handed in).
    """

    __slots__ = (
        "_answers",
        "_clock",
        "_shown",
        "loadout",
        "messages",
        "open_prompts",
        "prompt_history",
    )

    def __init__(self, clock: HardwareClock, *, loadout: SimLoadout | None = None) -> None:
        self._clock = clock
        self.loadout = loadout if loadout is not None else SimLoadout(default_loadout(1))
        self.messages: deque[ScreenMessage] = deque(maxlen=_HISTORY)
        self.prompt_history: deque[Prompt] = deque(maxlen=_HISTORY)
        self.open_prompts: dict[str, Prompt] = {}
        self._answers: asyncio.Queue[PromptAnswer] = asyncio.Queue()
        self._shown = asyncio.Event()

    @property
    def current_message(self) -> ScreenMessage | None:
        """The newest message, if any."""
        return self.messages[-1] if self.messages else None

    async def show_message(self, text: str, level: MessageLevel) -> None:
        """Show a message."""
        self.messages.append(ScreenMessage(text, level, self._clock.now()))

    async def show_prompt(self, prompt: Prompt) -> None:
        """Show a prompt, replacing an open one with the same id."""
        self.open_prompts[prompt.prompt_id] = prompt
        self.prompt_history.append(prompt)
        shown, self._shown = self._shown, asyncio.Event()
        shown.set()

    async def wait_for_prompt(self, prompt_id: str) -> Prompt:
        """Wait until the prompt `prompt_id` is open on the screen (at once if it is)."""
        while (prompt := self.open_prompts.get(prompt_id)) is None:
            await self._shown.wait()
        return prompt

    async def withdraw_prompt(self, prompt_id: str) -> None:
        """Take a prompt off the screen."""
        self.open_prompts.pop(prompt_id, None)

    async def next_answer(self) -> PromptAnswer:
        """Wait for the next answer given through `answer`."""
        return await self._answers.get()

    def answer(self, prompt_id: str, option: str) -> PromptAnswer:
        """A person taps `option` on the open prompt `prompt_id`.

        Raises `KeyError` if no such prompt is on the screen (never shown, answered or withdrawn)
        and `ValueError` if the prompt does not offer `option`.
        """
        prompt = self.open_prompts.get(prompt_id)
        if prompt is None:
            raise KeyError(f"no open prompt {prompt_id!r}")
        if option not in prompt.options:
            raise ValueError(f"prompt {prompt_id!r} offers {prompt.options}, not {option!r}")
        del self.open_prompts[prompt_id]
        answered = PromptAnswer(prompt_id, option, self._clock.now())
        self._answers.put_nowait(answered)
        return answered

    def load_material(self, slot: int, material: str, colour: str | None = None) -> Loadout:
        """A person enters that `slot` now holds `material` (e.g. ``PETG``; the screen shows it
        in upper case) in `colour` (``#rrggbb``). Raises `LoadoutError` for a slot the printer
        does not have and `ValueError` for a name or colour the printer cannot report."""
        return self.loadout.set_material(slot, material.strip().upper(), colour)

    def unload_material(self, slot: int) -> Loadout:
        """A person enters that `slot` is empty now."""
        return self.loadout.set_material(slot, None)

    def fit_nozzle(self, nozzle_um: int) -> Loadout:
        """A person enters the nozzle now fitted, in micrometres (400 is 0.4 mm)."""
        return self.loadout.set_nozzle(nozzle_um)
