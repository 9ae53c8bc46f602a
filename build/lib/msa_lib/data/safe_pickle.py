"""Load pickled datasets without executing arbitrary code.

``pickle.load`` runs whatever callable a file names, so a downloaded ``.pkl`` is a program. The
dataset pickles used in multimodal sentiment analysis (MMSA ``aligned_50.pkl``, MulT
``iemocap_data.pkl``, ...) only need numpy arrays, numpy scalars/dtypes and builtin containers,
so :func:`safe_load` admits exactly those globals and refuses everything else *before* any of it
is called.

Files written by numpy 1.x name ``numpy.core.multiarray``; numpy 2 moved it to
``numpy._core.multiarray``. Both spellings are resolved here directly to the numpy-2 objects
(never importing the deprecated ``numpy.core`` shim).
"""
from __future__ import annotations

import collections
import io
import os
import pickle
from typing import Any, Callable

import numpy as np
from numpy._core import multiarray as _multiarray
from numpy._core import numeric as _numeric

from .container import DataFormatError

__all__ = ["UnsafePickleError", "safe_load"]


class UnsafePickleError(DataFormatError):
    """A pickle references a global that is neither numpy array machinery nor a builtin container."""


# Latin-1 is the only codec numpy itself uses when pickling array bytes with protocol <= 2
# (``_codecs.encode(text, 'latin1')``); any other codec name is refused.
_LATIN1_NAMES = frozenset({"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "iso_8859_1", "l1"})


def _build_allowed() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = _multiarray._reconstruct
        allowed[(mod, "scalar")] = _multiarray.scalar
    # Protocol-5 pickles of contiguous arrays rebuild them with ``numeric._frombuffer``.
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = _numeric._frombuffer
    for name in ("list", "dict", "tuple", "set", "frozenset", "bytearray", "complex", "slice", "str", "int", "float"):
        obj = getattr(__import__("builtins"), name)
        allowed[("builtins", name)] = obj
        allowed[("__builtin__", name)] = obj  # protocol 0-2 pickles written by Python 2
    return allowed


_ALLOWED: dict[tuple[str, str], Any] = _build_allowed()


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler whose :meth:`find_class` only resolves the whitelist above."""

    def __init__(self, file: io.BufferedIOBase, source: str, encoding: str) -> None:
        super().__init__(file, encoding=encoding)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle API
        obj = _ALLOWED.get((module, name))
        if obj is not None:
            return obj
        if (module, name) == ("_codecs", "encode"):
            return self._latin1_encode()
        raise UnsafePickleError(
            f"refusing to load {self._source}: it references {module}.{name}, "
            "which is not a numpy array or builtin container"
        )

    def _latin1_encode(self) -> Callable[..., bytes]:
        source = self._source

        def encode(obj: object, encoding: str = "utf-8", errors: str = "strict") -> bytes:
            if not isinstance(obj, str) or str(encoding).lower() not in _LATIN1_NAMES or errors != "strict":
                raise UnsafePickleError(
                    f"refusing to load {source}: it calls _codecs.encode with encoding {encoding!r}; "
                    "only the latin-1 encoding numpy uses for array bytes is allowed"
                )
            return obj.encode("latin-1")

        return encode

    def persistent_load(self, pid: object) -> Any:
        raise UnsafePickleError(f"refusing to load {self._source}: it uses a persistent id ({pid!r})")


def safe_load(path: str | os.PathLike[str], encoding: str = "latin1") -> object:
    """Unpickle ``path`` admitting only numpy arrays/scalars/dtypes and builtin containers.

    ``encoding`` only affects Python-2 ``str`` objects (py2-era MulT pickles); ``"latin1"`` is the
    setting numpy documents for loading such arrays and is harmless for Python-3 pickles.

    Raises:
        UnsafePickleError: the file references any other global (nothing it names is executed).
        DataFormatError: the file is not a readable pickle (truncated, corrupt, empty).
        OSError: the file cannot be opened.
    """
    source = os.fspath(path)
    with open(source, "rb") as fh:
        try:
            return _SafeUnpickler(fh, source, encoding).load()
        except DataFormatError:
            raise
        except RecursionError as exc:
            raise DataFormatError(f"{source}: pickle nests too deeply to load ({exc})") from exc
        except Exception as exc:  # pickle signals corruption with many exception types
            raise DataFormatError(
                f"{source}: not a readable pickle file (truncated or corrupt?): {type(exc).__name__}: {exc}"
            ) from exc
