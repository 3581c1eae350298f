"""Uploaded files: what the store keeps of them (their bytes live in the file storage)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select

from printfleet.cloud.store.engine import Database, get_row
from printfleet.cloud.store.ids import new_id
from printfleet.cloud.store.models import File
from printfleet.cloud.store.records import FileRecord, file_record, metadata_document
from printfleet.cloud.store.values import FileMetadata


class Files:
    """The repository of uploaded files."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(
        self,
        owner_id: str,
        *,
        name: str,
        size: int,
        sha256: str,
        storage_key: str,
        metadata: FileMetadata | None = None,
    ) -> FileRecord:
        """Record an uploaded file whose bytes are stored under ``storage_key``."""
        row = File(
            id=new_id(),
            owner_id=owner_id,
            name=name,
            size=size,
            sha256=sha256,
            storage_key=storage_key,
            file_metadata=metadata_document(metadata or FileMetadata()),
            created_at=self._db.now(),
        )
        async with self._db.transaction(write=True) as session:
            session.add(row)
        return file_record(row)

    async def get(self, file_id: str) -> FileRecord:
        """A file by id; raises :class:`NotFound`."""
        async with self._db.transaction(write=False) as session:
            return file_record(await get_row(session, File, file_id))

    async def by_id(self, file_ids: Collection[str]) -> dict[str, FileRecord]:
        """The files with these ids that exist, by id (one query for a page of jobs)."""
        async with self._db.transaction(write=False) as session:
            rows = await session.scalars(select(File).where(File.id.in_(list(file_ids))))
            return {row.id: file_record(row) for row in rows}

    async def for_owner(self, owner_id: str) -> list[FileRecord]:
        """A user's files, newest first."""
        async with self._db.transaction(write=False) as session:
            rows = await session.scalars(
                select(File)
                .where(File.owner_id == owner_id)
                .order_by(File.created_at.desc(), File.id.desc())
            )
            return [file_record(row) for row in rows]
