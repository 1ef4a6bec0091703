"""Online decoding: trials decoded while they are recorded, from a replay or a live stream.

:class:`OnlineDecoder` takes raw chunks (any size) and returns :class:`DecodedTrial` records;
:func:`load_online_decoder` builds one from a workflow's files; :mod:`megdecode.online.replay` replays
BIDS recordings through it (docs/realtime.md).
"""

from megdecode.online.build import gallery_from_files, load_online_decoder
from megdecode.online.decoder import DecodedTrial, Event, Gallery, OnlineDecoder, SkippedTrial

__all__ = [
    "DecodedTrial",
    "Event",
    "Gallery",
    "OnlineDecoder",
    "SkippedTrial",
    "gallery_from_files",
    "load_online_decoder",
]
