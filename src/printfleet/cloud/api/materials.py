"""What is loaded at a printer, said remotely (operator role): ``PUT /printers/{id}/materials/
{slot}`` and ``PUT /printers/{id}/nozzle``; and ``POST /printers/{id}/simulate`` for simulated
printers only (a print taken off, a fault, its repair).

What a person would enter at the printer's screen after loading a spool or swapping a nozzle.
Sent now or not at all (503; S9), signed like every command, audited; the printer records it and
reports it back in its state (``materials``, ``nozzle_um`` of the printer), which is what
dispatch matches jobs' material and nozzle against.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from printfleet.cloud.api.auth import Writer
from printfleet.cloud.api.context import Context
from printfleet.cloud.api.errors import ERROR_RESPONSES, error_responses
from printfleet.cloud.api.schemas import JSON_INTEGER
from printfleet.cloud.usecases.materials import MaterialActions
from printfleet.protocol.messages import (
    SIMULATED_FAULT_KINDS,
    SIMULATED_FAULT_PATTERN,
    SimulateAction,
    SimulateBody,
)

router = APIRouter(prefix="/api/v1", tags=["printers"], responses=ERROR_RESPONSES)

# What the schema says is what the route takes: ASCII only (str.upper would turn "ß" into
# "SS"), either case, nothing around it.
_MATERIAL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9+\-]{0,15}$"
_COLOUR_PATTERN = r"^#[0-9A-Fa-f]{6}$"
_MATERIAL = re.compile(_MATERIAL_PATTERN)
_COLOUR = re.compile(_COLOUR_PATTERN)
MIN_NOZZLE_UM, MAX_NOZZLE_UM = 100, 2000


def _invalid(kind: str, message: str) -> PydanticCustomError:
    """A validation error whose message is exactly ``message`` (no "Value error, " before it;
    without a context, pydantic leaves braces in it as they are)."""
    return PydanticCustomError(kind, message)


class MaterialIn(BaseModel):
    """What a filament slot holds now; ``material`` null empties the slot."""

    model_config = ConfigDict(extra="forbid")

    material: Annotated[
        str | None,
        Field(
            description="The filament type as slicers write it (upper case; lower case is "
            "accepted), or null for an empty slot",
            examples=["PLA", "PETG", "PA-CF"],
            json_schema_extra={"pattern": _MATERIAL_PATTERN},
        ),
    ]
    colour: Annotated[
        str | None,
        Field(
            description="The spool's colour as #rrggbb",
            examples=["#ff0000"],
            json_schema_extra={"pattern": _COLOUR_PATTERN},
        ),
    ] = None

    @field_validator("material")
    @classmethod
    def _material_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _MATERIAL.fullmatch(value):
            msg = (
                f"{value!r} is not a material name: 1 to 16 letters, digits, '+' or '-', "
                'starting with a letter or digit, e.g. "PLA", "PETG" or "PA-CF"'
            )
            raise _invalid("material_name", msg)
        return value.upper()

    @field_validator("colour")
    @classmethod
    def _colour(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _COLOUR.fullmatch(value):
            msg = f'{value!r} is not a colour: give "#rrggbb" in hex, e.g. "#ff0000" for red'
            raise _invalid("colour", msg)
        return value.lower()


class NozzleIn(BaseModel):
    """The nozzle fitted now."""

    model_config = ConfigDict(extra="forbid")

    nozzle_um: Annotated[
        int,
        Field(
            description="The nozzle's diameter in micrometres (400 is a 0.4 mm nozzle)",
            examples=[400],
            json_schema_extra={"minimum": MIN_NOZZLE_UM, "maximum": MAX_NOZZLE_UM},
        ),
        JSON_INTEGER,
    ]

    @field_validator("nozzle_um")
    @classmethod
    def _in_range(cls, value: int) -> int:
        if not MIN_NOZZLE_UM <= value <= MAX_NOZZLE_UM:
            msg = (
                f"a nozzle of {value} µm: give micrometres from {MIN_NOZZLE_UM} to "
                f"{MAX_NOZZLE_UM}, e.g. 400 for a 0.4 mm nozzle"
            )
            raise _invalid("nozzle_um", msg)
        return value


_FAULT_EXAMPLES = (
    'KIND[:ARG], e.g. "heater-disconnected", "sensor-open:bed" or "power-loss:30s"; kinds: '
    + ", ".join(SIMULATED_FAULT_KINDS)
)


class SimulateIn(BaseModel):
    """What to act out on a simulated printer: ``fault`` with action ``fault`` only."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {
                    "properties": {"action": {"const": "fault"}, "fault": {"type": "string"}},
                    "required": ["fault"],
                },
                {
                    "properties": {
                        "action": {"enum": ["remove_print", "clear_fault"]},
                        "fault": {"type": "null"},
                    }
                },
            ]
        },
    )

    action: Annotated[
        SimulateAction,
        Field(description="remove_print: a person takes the print off; fault: a fault strikes; "
              "clear_fault: the simulated hardware is repaired (a latched fault stays until a "
              "person clears it)"),
    ]  # fmt: skip
    fault: Annotated[
        str | None,
        Field(
            description="With action fault only: KIND[:ARG] as printfleet sim --fault names it, "
            "without @WHEN (it strikes now)",
            examples=["sensor-open:bed", "power-loss:30s"],
            json_schema_extra={"pattern": SIMULATED_FAULT_PATTERN},
        ),
    ] = None

    @model_validator(mode="after")
    def _fault_with_its_action(self) -> SimulateIn:
        if self.action is SimulateAction.FAULT and self.fault is None:
            raise _invalid("fault_missing", f'action "fault" needs a fault: {_FAULT_EXAMPLES}')
        if self.action is not SimulateAction.FAULT and self.fault is not None:
            raise _invalid("fault_unexpected", 'only action "fault" takes a fault')
        try:
            SimulateBody(action=self.action, fault=self.fault)
        except ValidationError:
            raise _invalid("fault", f"{self.fault!r} is not a fault: {_FAULT_EXAMPLES}") from None
        return self


class LoadoutCommandSent(BaseModel):
    """The command went to the printer now (S9); its ``ack`` and new state follow."""

    printer_id: str
    action: str
    command_id: str


Slot = Annotated[int, Path(ge=1, le=16, description="The slot, numbered from 1 as slicers do")]


def _actions(context: Context) -> MaterialActions:
    return MaterialActions(context.service.printers)


@router.put("/printers/{printer_id}/materials/{slot}", status_code=status.HTTP_202_ACCEPTED)
async def set_material(
    printer_id: str, slot: Slot, body: MaterialIn, principal: Writer, context: Context
) -> LoadoutCommandSent:
    """Say what filament ``slot`` holds (owner or operator; audited); ``material`` null says
    the slot is empty. A slot the printer does not have is refused by the printer."""
    command_id = await _actions(context).set_material(
        principal, printer_id, slot=slot, material=body.material, colour=body.colour
    )
    return LoadoutCommandSent(printer_id=printer_id, action="set_material", command_id=command_id)


@router.put("/printers/{printer_id}/nozzle", status_code=status.HTTP_202_ACCEPTED)
async def set_nozzle(
    printer_id: str, body: NozzleIn, principal: Writer, context: Context
) -> LoadoutCommandSent:
    """Say which nozzle is fitted (owner or operator; audited)."""
    command_id = await _actions(context).set_nozzle(principal, printer_id, nozzle_um=body.nozzle_um)
    return LoadoutCommandSent(printer_id=printer_id, action="set_nozzle", command_id=command_id)


@router.post(
    "/printers/{printer_id}/simulate",
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(409),
)
async def simulate(
    printer_id: str, body: SimulateIn, principal: Writer, context: Context
) -> LoadoutCommandSent:
    """Act something out on a simulated printer (owner or operator; audited): take the print off
    the plate, strike it with a fault as ``printfleet sim --fault`` would, or repair it. A printer
    that is not simulated is 409 (and would refuse the command itself)."""
    command_id = await _actions(context).simulate(
        principal, printer_id, action=body.action, fault=body.fault
    )
    return LoadoutCommandSent(printer_id=printer_id, action="simulate", command_id=command_id)
