"""Printers, and the shares that let other users operate or watch them."""

from __future__ import annotations

from sqlalchemy import Select, and_, delete, or_, select

from printfleet.cloud.store.audit import audit_row
from printfleet.cloud.store.engine import Database, get_row
from printfleet.cloud.store.models import Printer, PrinterShare, User
from printfleet.cloud.store.records import (
    PrinterAccess,
    PrinterRecord,
    UserRecord,
    printer_record,
    user_record,
)
from printfleet.cloud.store.values import Actor, JSONObject, Role, ShareRole


class Printers:
    """The repository of printers and their shares; every change to either is audited."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(
        self,
        printer_id: str,
        *,
        owner_id: str,
        name: str,
        model: str,
        broker_username: str,
        broker_password_hash: str,
        plate_check: bool = True,
        cloud_enabled: bool = True,
    ) -> PrinterRecord:
        """Provision a printer. Raises :class:`AlreadyExists` for a known printer id or broker
        user, :class:`NotFound` for an unknown owner."""
        row = Printer(
            id=printer_id,
            owner_id=owner_id,
            name=name,
            model=model,
            broker_username=broker_username,
            broker_password_hash=broker_password_hash,
            plate_check=plate_check,
            cloud_enabled=cloud_enabled,
            created_at=self._db.now(),
        )
        async with self._db.transaction(write=True) as session:
            session.add(row)
            session.add(
                audit_row(
                    self._db.now(),
                    Actor.user(owner_id),
                    "printer.created",
                    printer_id=printer_id,
                    detail={"plate_check": plate_check, "cloud_enabled": cloud_enabled},
                )
            )
        return printer_record(row)

    async def get(self, printer_id: str) -> PrinterRecord:
        """A printer by id; raises :class:`NotFound`."""
        async with self._db.transaction(write=False) as session:
            return printer_record(await get_row(session, Printer, printer_id))

    async def all(self) -> list[PrinterRecord]:
        """Every printer, by id (the dispatcher's roster)."""
        async with self._db.transaction(write=False) as session:
            rows = await session.scalars(select(Printer).order_by(Printer.id))
            return [printer_record(row) for row in rows]

    async def update(
        self,
        printer_id: str,
        *,
        actor: Actor,
        name: str | None = None,
        plate_check: bool | None = None,
        cloud_enabled: bool | None = None,
    ) -> PrinterRecord:
        """Change a printer's settings (None leaves one as is), auditing what changed: turning
        the plate check off is a safety decision someone must answer for (S5)."""
        async with self._db.transaction(write=True) as session:
            row = await get_row(session, Printer, printer_id)
            changes: JSONObject = {}
            if name is not None and name != row.name:
                row.name, changes["name"] = name, name
            if plate_check is not None and plate_check != row.plate_check:
                row.plate_check, changes["plate_check"] = plate_check, plate_check
            if cloud_enabled is not None and cloud_enabled != row.cloud_enabled:
                row.cloud_enabled, changes["cloud_enabled"] = cloud_enabled, cloud_enabled
            if changes:
                session.add(
                    audit_row(
                        self._db.now(),
                        actor,
                        "printer.updated",
                        printer_id=printer_id,
                        detail=changes,
                    )
                )
            return printer_record(row)

    async def share(self, printer_id: str, user_id: str, role: ShareRole, *, actor: Actor) -> None:
        """Give ``user_id`` a role on the printer, replacing any role it had (audited).

        Raises :class:`NotFound` for an unknown printer or user, ValueError for the owner.
        """
        async with self._db.transaction(write=True) as session:
            printer = await get_row(session, Printer, printer_id)
            if printer.owner_id == user_id:
                raise ValueError("a printer's owner cannot also be given a share of it")
            statement = self._db.insert(PrinterShare).values(
                printer_id=printer_id, user_id=user_id, role=role
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[PrinterShare.printer_id, PrinterShare.user_id],
                    set_={"role": statement.excluded.role},
                )
            )
            session.add(
                audit_row(
                    self._db.now(),
                    actor,
                    "printer.shared",
                    printer_id=printer_id,
                    detail={"user_id": user_id, "role": role.value},
                )
            )

    async def unshare(self, printer_id: str, user_id: str, *, actor: Actor) -> ShareRole | None:
        """Take a user's share away (audited); the role it gave, or None if there was none."""
        async with self._db.transaction(write=True) as session:
            role: ShareRole | None = await session.scalar(
                delete(PrinterShare)
                .where(PrinterShare.printer_id == printer_id, PrinterShare.user_id == user_id)
                .returning(PrinterShare.role)
            )
            if role is None:
                return None
            session.add(
                audit_row(
                    self._db.now(),
                    actor,
                    "printer.unshared",
                    printer_id=printer_id,
                    detail={"user_id": user_id},
                )
            )
            return role

    async def shares_of(self, printer_id: str) -> list[tuple[UserRecord, ShareRole]]:
        """Who the printer is shared with, and as what, by e-mail address."""
        async with self._db.transaction(write=False) as session:
            rows = await session.execute(
                select(User, PrinterShare.role)
                .join(PrinterShare, PrinterShare.user_id == User.id)
                .where(PrinterShare.printer_id == printer_id)
                .order_by(User.email)
            )
            return [(user_record(user), role) for user, role in rows]

    async def for_user(self, user_id: str) -> list[PrinterAccess]:
        """The printers a user owns or has a share of, with the user's role, by printer id."""
        visible = or_(Printer.owner_id == user_id, PrinterShare.user_id.is_not(None))
        async with self._db.transaction(write=False) as session:
            rows = await session.execute(
                _with_share_of(user_id).where(visible).order_by(Printer.id)
            )
            return [
                PrinterAccess(printer_record(printer), _role(printer, user_id, share))
                for printer, share in rows
            ]

    async def audience(self, printer_id: str) -> frozenset[str]:
        """Every user who can see the printer: its owner and each user it is shared with."""
        async with self._db.transaction(write=False) as session:
            owner = await session.scalar(select(Printer.owner_id).where(Printer.id == printer_id))
            if owner is None:
                return frozenset()
            shared = await session.scalars(
                select(PrinterShare.user_id).where(PrinterShare.printer_id == printer_id)
            )
            return frozenset({owner, *shared})

    async def operators(self) -> list[tuple[PrinterRecord, frozenset[str]]]:
        """Every printer, by id, with the users who may operate it: its owner and every user
        it is shared with as operator (two queries, whatever the fleet's size)."""
        async with self._db.transaction(write=False) as session:
            printers = list(await session.scalars(select(Printer).order_by(Printer.id)))
            shares = await session.execute(
                select(PrinterShare.printer_id, PrinterShare.user_id).where(
                    PrinterShare.role == ShareRole.OPERATOR
                )
            )
            operators: dict[str, set[str]] = {}
            for printer_id, user_id in shares:
                operators.setdefault(printer_id, set()).add(user_id)
            return [
                (printer_record(row), frozenset({row.owner_id, *operators.get(row.id, ())}))
                for row in printers
            ]

    async def role_of(self, printer_id: str, user_id: str) -> Role | None:
        """What ``user_id`` may do with the printer, or None if it may not even see it."""
        async with self._db.transaction(write=False) as session:
            rows = await session.execute(_with_share_of(user_id).where(Printer.id == printer_id))
            row = rows.first()
        if row is None:
            return None
        printer, share = row
        if printer.owner_id != user_id and share is None:
            return None
        return _role(printer, user_id, share)


def _with_share_of(user_id: str) -> Select[Printer, ShareRole | None]:
    """Printers, each with ``user_id``'s share of it (None if the user has none)."""
    return select(Printer, PrinterShare.role).outerjoin(
        PrinterShare, and_(PrinterShare.printer_id == Printer.id, PrinterShare.user_id == user_id)
    )


def _role(printer: Printer, user_id: str, share: ShareRole | None) -> Role:
    if printer.owner_id == user_id:
        return Role.OWNER
    assert share is not None  # noqa: S101 - the query returns only owned or shared printers
    return Role(share.value)
