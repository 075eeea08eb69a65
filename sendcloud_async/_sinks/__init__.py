"""Sinks: where a job commits its records and the state that follows them, as one step.

A job (an export, a watch) reads from a source and commits each batch through a
``Sink``: ``await sink.commit(records, state)`` stores the records and the state
after them together, both or neither, whenever the process dies; ``await
sink.load()`` gives the state committed last (``None``: nothing yet), from which
the job continues. One implementation per medium:

* ``FileSink``: JSON Lines or CSV written at the committed offset and fsync-ed,
  the state beside it replaced atomically, the file locked while it is held;
* ``MemorySink``: records and state in a ``MemoryMedium`` (tests, one-off runs);
* ``RedisSink``: an account's stream and state in Redis, written through the
  lease's fence (``RedisWatchStore.commit``).

The state's type is the job's (an export checkpoint, a ``WatchFile``, a
``WatchState``); every sink keeps it as msgspec JSON.
"""

from ._base import Sink, SinkError, SinkInUseError
from ._file import FileSink
from ._memory import MemoryMedium, MemorySink
from ._redis import RedisSink

__all__ = [
    "FileSink",
    "MemoryMedium",
    "MemorySink",
    "RedisSink",
    "Sink",
    "SinkError",
    "SinkInUseError",
]
