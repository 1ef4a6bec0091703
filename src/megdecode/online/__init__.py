"""Online decoding: trials decoded while they are recorded, from a replay or a live stream.

:class:`OnlineDecoder` takes raw chunks (any size) and returns :class:`DecodedTrial` records; it is built
from a :class:`SubjectModel` (a trained model for one subject), a :class:`Gallery` and
:class:`OnlineSettings`. :func:`load_online_decoder` builds one from a workflow's files,
:func:`megdecode.artifacts.online_model.read_online_model` from an online model folder;
:mod:`megdecode.online.replay` replays BIDS recordings through it, :mod:`megdecode.online.cli` is the
``megdecode online`` command (docs/realtime.md).
"""

from megdecode.online.build import gallery_from_files, load_online_decoder, load_subject_model
from megdecode.online.decoder import (
    DecodedTrial,
    Event,
    Gallery,
    OnlineDecoder,
    OnlineSettings,
    SkippedTrial,
    SubjectModel,
)
from megdecode.online.trial_log import TrialLog, read_trial_log

__all__ = [
    "DecodedTrial",
    "Event",
    "Gallery",
    "OnlineDecoder",
    "OnlineSettings",
    "SkippedTrial",
    "SubjectModel",
    "TrialLog",
    "gallery_from_files",
    "load_online_decoder",
    "load_subject_model",
    "read_trial_log",
]
