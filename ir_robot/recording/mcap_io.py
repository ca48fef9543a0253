"""Write and read MCAP files in the ``ros2`` profile, without ROS.

``McapRecorder`` takes raw CDR bytes (what an rclpy ``raw=True`` subscription
delivers, header included) or plain Python objects (encoded from the schema by
mcap-ros2-support), so recording never deserialises images. Each channel carries
``offered_qos_profiles`` (rosbag2's YAML) so ``ros2 bag play`` and
``ir-robot replay`` re-offer latched topics as latched. Readers return counts per
topic, raw messages for replay, or decoded messages for analysis.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from ir_robot.core.errors import IrRobotError
from ir_robot.recording.msgdefs import message_definition, schema_name


class RecordingError(IrRobotError):
    """An MCAP file cannot be written or read."""


@dataclass(frozen=True)
class QosInfo:
    """The QoS a publisher offered, as recorded (rosbag2 names: reliable/best_effort, volatile/transient_local)."""

    reliability: str = "reliable"
    durability: str = "volatile"
    depth: int = 10

    def to_rosbag2(self) -> dict[str, Any]:
        """This QoS as one entry of rosbag2's ``offered_qos_profiles`` (what ``ros2 bag play`` reads)."""
        zero = {"sec": 0, "nsec": 0}
        return {
            "history": "keep_last",
            "depth": int(self.depth),
            "reliability": self.reliability,
            "durability": self.durability,
            "deadline": dict(zero),
            "lifespan": dict(zero),
            "liveliness": "automatic",
            "liveliness_lease_duration": dict(zero),
            "avoid_ros_namespace_conventions": False,
        }

    @classmethod
    def from_rosbag2(cls, entry: dict[str, Any]) -> QosInfo:
        """The QoS of one ``offered_qos_profiles`` entry (names or, from older rosbag2, enum integers)."""

        def name(value: Any, names: dict[int, str]) -> str:  # rosbag2 < 9 stored enum integers
            return names.get(value, "reliable") if isinstance(value, int) else str(value)

        rel = name(entry.get("reliability", "reliable"), {1: "reliable", 2: "best_effort"})
        dur = name(entry.get("durability", "volatile"), {1: "transient_local", 2: "volatile"})
        return cls(reliability=rel, durability=dur, depth=int(entry.get("depth", 10) or 10))


def qos_to_yaml(profiles: Iterable[QosInfo]) -> str:
    """A channel's ``offered_qos_profiles`` metadata (rosbag2's YAML list) for the offered profiles."""
    return yaml.safe_dump([p.to_rosbag2() for p in profiles], sort_keys=False)


def qos_from_yaml(text: str) -> tuple[QosInfo, ...]:
    """The profiles in an ``offered_qos_profiles`` text; none for empty or unreadable YAML."""
    if not text:
        return ()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return ()
    return tuple(QosInfo.from_rosbag2(e) for e in data or () if isinstance(e, dict))


class McapRecorder:
    """A thread-safe MCAP writer for ROS 2 topics. Use as a context manager or call ``close()``."""

    def __init__(self, path: str | Path, *, metadata: dict[str, str] | None = None, chunk_size: int = 4 << 20):
        from mcap.writer import CompressionType, Writer

        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "wb")
        except OSError as exc:
            raise RecordingError(
                f"cannot write the recording {self.path}: {exc.strerror or exc}; choose a writable path for --record"
            ) from None
        self._writer = Writer(self._file, chunk_size=chunk_size, compression=CompressionType.ZSTD)
        self._writer.start(profile="ros2", library="ir_robot recording (mcap + mcap-ros2-support)")
        self._lock = threading.Lock()
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._types: dict[str, str] = {}
        self._encoders: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self._closed = False
        if metadata:
            self._writer.add_metadata("ir_robot", {str(k): str(v) for k, v in metadata.items()})

    # ------------------------------------------------------------------ channels
    def add_channel(self, topic: str, type_name: str, qos: Iterable[QosInfo] = ()) -> int:
        """Register ``topic`` with its message type (idempotent). Returns the channel id."""
        from mcap.well_known import MessageEncoding, SchemaEncoding

        stype = schema_name(type_name)
        with self._lock:
            if topic in self._channels:
                if self._types[topic] != stype:
                    raise RecordingError(f"topic {topic} was recorded as {self._types[topic]}, now offered as {stype}")
                return self._channels[topic]
            if stype not in self._schemas:
                self._schemas[stype] = self._writer.register_schema(
                    name=stype, encoding=SchemaEncoding.ROS2, data=message_definition(stype).encode()
                )
            cid = self._writer.register_channel(
                topic=topic,
                message_encoding=MessageEncoding.CDR,
                schema_id=self._schemas[stype],
                metadata={"offered_qos_profiles": qos_to_yaml(qos)},
            )
            self._channels[topic] = cid
            self._types[topic] = stype
            self.counts[topic] = 0
            return cid

    # ------------------------------------------------------------------ messages
    def write_raw(
        self, topic: str, data: bytes, log_time_ns: int | None = None, publish_time_ns: int | None = None
    ) -> None:
        """Write CDR bytes (with the 4-byte encapsulation header) on a registered topic."""
        now = time.time_ns() if log_time_ns is None else int(log_time_ns)
        with self._lock:
            if self._closed:
                return
            cid = self._channels.get(topic)
            if cid is None:
                raise RecordingError(f"topic {topic} has no channel yet; call add_channel(topic, type) first")
            seq = self.counts[topic]
            self._writer.add_message(
                channel_id=cid,
                log_time=now,
                publish_time=now if publish_time_ns is None else int(publish_time_ns),
                sequence=seq,
                data=bytes(data),
            )
            self.counts[topic] = seq + 1

    def write(
        self,
        topic: str,
        type_name: str,
        message: Any,
        log_time_ns: int | None = None,
        publish_time_ns: int | None = None,
    ) -> None:
        """Encode a plain object (attributes or dict keys named like the fields) and write it."""
        from mcap_ros2._dynamic import serialize_dynamic

        stype = schema_name(type_name)
        self.add_channel(topic, stype)
        enc = self._encoders.get(stype)
        if enc is None:
            enc = self._encoders[stype] = serialize_dynamic(stype, message_definition(stype))[stype]
        self.write_raw(topic, enc(message), log_time_ns, publish_time_ns)

    def close(self) -> None:
        """Finish the file (writes the summary a reader needs); later writes are dropped, a second close is a no-op."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._writer.finish()
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# ---------------------------------------------------------------------- reading
@dataclass(frozen=True)
class TopicInfo:
    """One recorded topic: its message type, how many messages and the QoS its publishers offered."""

    topic: str
    type_name: str
    count: int
    qos: tuple[QosInfo, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class RawMessage:
    """One recorded message as stored: CDR bytes with its topic, type and log/publish stamps (ns)."""

    topic: str
    type_name: str
    log_time_ns: int
    publish_time_ns: int
    data: bytes


def _open(path: str | Path) -> BinaryIO:
    p = Path(path)
    if not p.is_file():
        raise RecordingError(f"recording {p} not found")
    return open(p, "rb")


def summary(path: str | Path) -> dict[str, TopicInfo]:
    """Topics in an MCAP file with their type, message count and recorded QoS."""
    from mcap.exceptions import McapError
    from mcap.reader import make_reader

    with _open(path) as f:
        try:
            reader = make_reader(f)
            summ = reader.get_summary()
        except (McapError, ValueError, EOFError, OSError) as exc:
            raise RecordingError(
                f"{path} is not a readable MCAP file ({exc}); was the recording closed cleanly?"
            ) from None
        if summ is None:
            raise RecordingError(f"{path} has no MCAP summary (the recorder did not finish); re-record it")
        counts = summ.statistics.channel_message_counts if summ.statistics else {}
        out = {}
        for cid, ch in summ.channels.items():
            schema = summ.schemas.get(ch.schema_id)
            out[ch.topic] = TopicInfo(
                ch.topic,
                schema.name if schema else "",
                int(counts.get(cid, 0)),
                qos_from_yaml(ch.metadata.get("offered_qos_profiles", "")),
            )
        return out


def metadata(path: str | Path, name: str = "ir_robot") -> dict[str, str]:
    """The key/value metadata record ``name`` of a recording (what the recorder was given); empty if absent."""
    from mcap.reader import make_reader

    with _open(path) as f:
        for rec in make_reader(f).iter_metadata():
            if rec.name == name:
                return dict(rec.metadata)
    return {}


def iter_raw(path: str | Path, topics: Iterable[str] | None = None) -> Iterator[RawMessage]:
    """Messages in log-time order as raw CDR, for replay."""
    from mcap.reader import make_reader

    with _open(path) as f:
        reader = make_reader(f)
        for schema, channel, msg in reader.iter_messages(topics=list(topics) if topics else None, log_time_order=True):
            yield RawMessage(channel.topic, schema.name if schema else "", msg.log_time, msg.publish_time, msg.data)


def iter_decoded(path: str | Path, topics: Iterable[str] | None = None) -> Iterator[tuple[str, int, Any]]:
    """(topic, log_time_ns, decoded message) in log-time order; messages decoded from the stored schemas."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    with _open(path) as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for _schema, channel, msg, decoded in reader.iter_decoded_messages(
            topics=list(topics) if topics else None, log_time_order=True
        ):
            yield channel.topic, msg.log_time, decoded
