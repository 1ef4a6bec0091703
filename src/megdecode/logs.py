"""Logging for workflow scripts: one log file per job, progress bars kept readable."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def job_logging(snakemake: Any) -> Iterator[logging.Logger]:
    """Route logging, warnings, stdout/stderr (tqdm bars) and any traceback into the job's log file.

    Also caps torch/BLAS threads at the rule's ``threads``. Use as::

        with job_logging(snakemake) as log:
            ...
    """
    log_path = Path(snakemake.log[0])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    set_threads(int(getattr(snakemake, "threads", 1) or 1))
    with open(log_path, "w", buffering=1) as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        logger = logging.getLogger(f"megdecode.{snakemake.rule}")
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield logger
        except BaseException:
            logger.exception("job failed")
            raise
        finally:
            root.removeHandler(handler)


def set_threads(n: int) -> None:
    """Cap numeric libraries at ``n`` threads (the rule's ``threads``)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
