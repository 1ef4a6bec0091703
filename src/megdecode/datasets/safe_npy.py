"""Read ``.npy`` files that hold pickled Python objects without ever running code from the file.

Some public datasets (THINGS-EEG2 among them) ship ``np.save`` of a ``dict``: a 0-d object array whose payload
is a pickle. ``np.load(..., allow_pickle=True)`` would run whatever that pickle names. :func:`read_npy` reads
plain arrays with ``allow_pickle=False``; an object array is read with :class:`RestrictedUnpickler`,
which admits
only the globals needed to rebuild numpy arrays, dtypes and scalars and builtin containers. Anything else (a
function such as ``os.system``, a class of another library) is refused before it is called, with an error
naming the file.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray

#: (module, name) a pickle may reference, and what each resolves to (never imported by name from the file)
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **{
        (module, "_reconstruct"): _multiarray._reconstruct
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    },
    **{
        (module, "scalar"): _multiarray.scalar
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    },
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # protocol <= 2 pickles write bytes through _codecs.encode (a pure str -> bytes conversion)
    ("_codecs", "encode"): codecs.encode,
    **{
        ("builtins", t.__name__): t
        for t in (dict, list, tuple, set, frozenset, str, bytes, bytearray, int, float, complex, bool)
    },
}


class UnsafePickleError(ValueError):
    """A pickle names a global outside :data:`ALLOWED_GLOBALS`; nothing of it was run."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds only numpy arrays, dtypes, scalars and builtin containers."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refused global {module}.{name}") from None


def _read_header(fp: io.BufferedReader) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fp)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(fp)
    return np.lib.format._read_array_header(fp, version)  # (3, 0): utf-8 header, no public reader


def read_npy(path: Path | str) -> Any:
    """The content of one ``.npy`` file: an array, or for an object array the object it holds
    (``np.save(path, some_dict)`` gives the dict back), rebuilt by :class:`RestrictedUnpickler`.

    Raises ``FileNotFoundError`` or ``ValueError`` naming the file: not a ``.npy`` file, or a pickle that
    names
    anything but numpy arrays, dtypes, scalars and builtin containers (refused before it runs).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    with path.open("rb") as fp:
        try:
            shape, _, dtype = _read_header(fp)
        except ValueError as err:
            raise ValueError(f"{path}: not a NumPy .npy file ({err}); download the file again") from None
        if not dtype.hasobject:
            return np.load(path, allow_pickle=False)
        try:
            array = RestrictedUnpickler(fp).load()
        except UnsafePickleError as err:
            raise UnsafePickleError(
                f"{path}: {err}: this .npy file's pickle names code beyond numpy arrays and plain Python "
                "containers, so it is not read (nothing of it was run); use the dataset's published file"
            ) from None
        except (pickle.UnpicklingError, EOFError, AttributeError, TypeError) as err:
            raise ValueError(f"{path}: corrupt pickle payload ({err}); download the file again") from None
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise ValueError(f"{path}: payload is not the object array its header announces; download it again")
    return array.item() if array.shape == () else array
