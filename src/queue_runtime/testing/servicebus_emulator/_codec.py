"""AMQP 1.0 message sections: split what a client sent, re-encode what the broker delivers.

The broker keeps a sender's properties, application properties and body sections verbatim and
writes its own header (with an explicit delivery count, which a generic encoder would drop when
it is 0 and the SDK would then read as ``None``) and message annotations around them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from proton import Data, symbol, timestamp, ubyte, uint

__all__ = [
    "APPLICATION_PROPERTIES",
    "DATA",
    "FOOTER",
    "HEADER",
    "MESSAGE_ANNOTATIONS",
    "PROPERTIES",
    "CodecError",
    "ParsedMessage",
    "encode_delivery",
    "parse_message",
    "unpack_batch",
]

HEADER: Final = 0x70
DELIVERY_ANNOTATIONS: Final = 0x71
MESSAGE_ANNOTATIONS: Final = 0x72
PROPERTIES: Final = 0x73
APPLICATION_PROPERTIES: Final = 0x74
DATA: Final = 0x75
SEQUENCE: Final = 0x76
VALUE: Final = 0x77
FOOTER: Final = 0x78
_BODY: Final = (DATA, SEQUENCE, VALUE, FOOTER)


class CodecError(ValueError):
    """The bytes are not a well-formed AMQP message."""


@dataclass(slots=True)
class ParsedMessage:
    """A client's message: decoded routing fields plus the raw sections the broker keeps."""

    durable: bool = False
    priority: int = 4
    #: Header time to live in milliseconds.
    ttl: int | None = None
    annotations: dict[Any, Any] = field(default_factory=dict)
    #: The properties list as decoded (message-id first, group-id at index 10).
    properties: list[Any] = field(default_factory=list)
    properties_raw: bytes = b""
    application_properties: dict[Any, Any] | None = None
    application_properties_raw: bytes = b""
    #: Body sections and footer, verbatim.
    body_raw: bytes = b""
    #: (section code, raw bytes) of each body section.
    bodies: list[tuple[int, bytes]] = field(default_factory=list)

    def property_at(self, index: int) -> Any:
        return self.properties[index] if index < len(self.properties) else None

    @property
    def message_id(self) -> Any:
        return self.property_at(0)

    @property
    def session_id(self) -> str | None:
        value = self.property_at(10)
        return None if value is None else str(value)

    @property
    def size(self) -> int:
        return len(self.properties_raw) + len(self.application_properties_raw) + len(self.body_raw)


def _plain(value: Any) -> Any:
    """Proton hands binary values out as memoryviews; keep bytes (they must outlive the buffer)."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _split(payload: bytes) -> list[tuple[int, bytes, Data]]:
    sections: list[tuple[int, bytes, Data]] = []
    view = memoryview(payload)
    while view:
        data = Data()
        try:
            consumed = data.decode(bytes(view))
        except Exception as exc:  # proton raises its own DataException
            raise CodecError(f"undecodable AMQP section: {exc}") from exc
        data.rewind()
        if consumed <= 0 or data.next() != Data.DESCRIBED:
            raise CodecError("an AMQP message section must be a described type")
        data.enter()
        data.next()
        code = int(data.get_object() or 0)
        data.next()  # positioned on the section's value
        sections.append((code, bytes(view[:consumed]), data))
        view = view[consumed:]
    return sections


def parse_message(payload: bytes) -> ParsedMessage:
    """Decode the sections of one AMQP message (header and annotations decoded, rest kept raw)."""
    parsed = ParsedMessage()
    body: list[bytes] = []
    for code, raw, data in _split(payload):
        if code == HEADER:
            fields = data.get_object() or []
            fields = list(fields) + [None] * (5 - len(fields))
            parsed.durable = bool(fields[0])
            parsed.priority = 4 if fields[1] is None else int(fields[1])
            parsed.ttl = None if fields[2] is None else int(fields[2])
        elif code == MESSAGE_ANNOTATIONS:
            parsed.annotations = _plain(dict(data.get_object() or {}))
        elif code == PROPERTIES:
            parsed.properties = _plain(list(data.get_object() or []))
            parsed.properties_raw = raw
        elif code == APPLICATION_PROPERTIES:
            parsed.application_properties = _plain(dict(data.get_object() or {}))
            parsed.application_properties_raw = raw
        elif code in _BODY:
            body.append(raw)
            parsed.bodies.append((code, raw))
        elif code != DELIVERY_ANNOTATIONS:
            raise CodecError(f"unknown AMQP message section 0x{code:x}")
    parsed.body_raw = b"".join(body)
    return parsed


def unpack_batch(parsed: ParsedMessage) -> list[bytes] | None:
    """The inner messages of an SDK batch envelope, or None when ``parsed`` is one message.

    The SDK sends a batch as message format 0x80013700 whose data sections each hold one
    encoded message; proton does not expose the transfer's message format, so the envelope is
    recognised by its shape: no header or application properties, only data sections, each of
    which decodes as a whole AMQP message with a body.
    """
    if parsed.application_properties is not None or not parsed.bodies:
        return None
    inner: list[bytes] = []
    for code, raw in parsed.bodies:
        if code != DATA:
            return None
        data = Data()
        data.decode(raw)
        data.rewind()
        data.next()
        data.enter()
        data.next()
        data.next()
        value = data.get_object()
        if not isinstance(value, bytes | memoryview):
            return None
        content = bytes(value)
        if not content.startswith(b"\x00\x53"):
            return None
        try:
            sections = _split(content)
        except CodecError:
            return None
        if not any(code in _BODY for code, _, _ in sections):
            return None
        inner.append(content)
    return inner


def _encode_map_section(code: int, mapping: Mapping[Any, Any]) -> bytes:
    data = Data()
    data.put_described()
    data.enter()
    data.put_ulong(code)
    data.put_object(dict(mapping))
    data.exit()
    return bytes(data.encode())


def _encode_header(
    durable: bool, priority: int, ttl: int | None, first_acquirer: bool, delivery_count: int
) -> bytes:
    data = Data()
    data.put_described()
    data.enter()
    data.put_ulong(HEADER)
    data.put_list()
    data.enter()
    data.put_bool(durable)
    data.put_ubyte(ubyte(priority))
    if ttl is None:
        data.put_null()
    else:
        data.put_uint(uint(ttl))
    data.put_bool(first_acquirer)
    data.put_uint(uint(delivery_count))  # explicit even when 0
    data.exit()
    data.exit()
    return bytes(data.encode())


def encode_delivery(
    parsed: ParsedMessage,
    *,
    delivery_count: int,
    annotations: Mapping[str, Any],
    application_properties: Mapping[str, Any] | None = None,
) -> bytes:
    """Header + merged message annotations + the sender's sections (application properties
    replaced by ``application_properties`` when given)."""
    merged = dict(parsed.annotations)
    merged.update({symbol(key): value for key, value in annotations.items()})
    if application_properties is not None:
        app = _encode_map_section(APPLICATION_PROPERTIES, application_properties)
    else:
        app = parsed.application_properties_raw
    return b"".join(
        (
            _encode_header(
                parsed.durable, parsed.priority, parsed.ttl, delivery_count == 0, delivery_count
            ),
            _encode_map_section(MESSAGE_ANNOTATIONS, merged),
            parsed.properties_raw,
            app,
            parsed.body_raw,
        )
    )


def ms_timestamp(seconds: float) -> timestamp:
    """An AMQP timestamp (milliseconds since the epoch)."""
    return timestamp(int(seconds * 1000))
