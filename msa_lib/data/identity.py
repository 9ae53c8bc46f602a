"""What a run's data IS, not where it lives: content hashes of the data files, or the synthetic recipe.

:func:`data_identity` is what a run key hashes, so the same file at another path gives the same key,
and a file overwritten at the same path gives a new one. Hashing a multi-GB pickle takes seconds, so
hashes are computed once and cached, keyed by (resolved path, size, mtime_ns): in this process, and in
a JSON file ``$MSA_LIB_CACHE/file-hashes.json`` (default ``~/.cache/msa_lib/file-hashes.json``),
written atomically; a corrupt or unreadable cache file is ignored (and rewritten on the next hash).
A file modified in the last two seconds is hashed afresh every time (like git's "racy" check: a
same-size rewrite within one timestamp tick keeps its mtime, so its cached hash could be stale).

Only the standard library is imported here (the results store, which uses this, stays light).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

__all__ = ["DATA_FORMATS", "cache_file", "data_format", "data_identity", "file_identity"]

#: keys of a CSD manifest that name data files (relative to the manifest)
MANIFEST_FILE_KEYS = ("text", "audio", "vision", "labels")
#: data options that say where data is or how the synthetic default is drawn; any other option is
#: kept in the identity as it is (it may change the data)
_LOCATION_OPTIONS = ("data_path", "size", "seed")

#: Version of the synthetic generator's draw (:mod:`msa_lib.data.synthetic` reads it). Bump it
#: whenever the generative process or its constants change: it is part of a synthetic dataset's
#: identity, so runs stored on an older draw are never reused as if current.
GENERATOR_VERSION = "3"

_CHUNK = 1 << 20
_RACY_NS = 2_000_000_000
_memory: dict[tuple[str, int, int], str] = {}


def cache_file() -> Path:
    """The persistent hash cache: ``$MSA_LIB_CACHE/file-hashes.json`` or ``~/.cache/msa_lib/file-hashes.json``."""
    folder = os.environ.get("MSA_LIB_CACHE") or "~/.cache/msa_lib"
    return Path(folder).expanduser() / "file-hashes.json"


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # absent, unreadable or corrupt: start afresh (the next write replaces it)
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, entries: dict) -> None:
    """Atomic: a temporary file in the same folder renamed into place. Failures are ignored (the
    cache only saves time)."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(entries, f, indent=0, sort_keys=True)
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _recent(mtime_ns: int) -> bool:
    """Modified within the last few seconds (or in the future): a same-size rewrite may still get
    the same mtime (timestamps advance in clock ticks), so such a hash is not cached."""
    return time.time_ns() - mtime_ns < _RACY_NS


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def file_identity(path: str | os.PathLike) -> dict:
    """``{"sha256": <hex of the content>, "bytes": <size>}`` of one file (cached; see the module doc)."""
    path = Path(path).expanduser()
    try:
        resolved = path.resolve(strict=True)
        st = resolved.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"data file {path} does not exist") from None
    if not resolved.is_file():
        raise IsADirectoryError(f"data file {path} is not a file")
    memo = (str(resolved), st.st_size, st.st_mtime_ns)
    digest = _memory.get(memo)
    if digest is None:
        cache_path = cache_file()
        entry = _read_cache(cache_path).get(str(resolved))
        if (isinstance(entry, dict) and entry.get("bytes") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns
                and isinstance(entry.get("sha256"), str)):
            digest = entry["sha256"]
        else:
            digest = _sha256(resolved)
            if not _recent(st.st_mtime_ns):
                entries = _read_cache(cache_path)  # re-read: another process may have added entries meanwhile
                entries[str(resolved)] = {"sha256": digest, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
                _write_cache(cache_path, entries)
        if not _recent(st.st_mtime_ns):
            _memory[memo] = digest
    return {"sha256": digest, "bytes": st.st_size}


#: file suffix → data format; ``load_dataset`` dispatches on it (a pickle's content then picks
#: the MMSA or MulT loader), so the format is known without opening the file
DATA_FORMATS: dict[str, str] = {".pkl": "pkl", ".json": "csd-manifest"}


def data_format(path: str | os.PathLike) -> str:
    """The format of a data file from its suffix (:data:`DATA_FORMATS`); another suffix as itself, or ``"unknown"``."""
    suffix = Path(path).suffix
    return DATA_FORMATS.get(suffix) or suffix.lstrip(".") or "unknown"


def data_identity(dataset: str, data_options: dict) -> dict:
    """What the data of a run is.

    * with ``data_options["data_path"]``: ``{"sha256", "bytes", "format"}`` of the file (``format``:
      :func:`data_format`, from the suffix; the content picks the pickle loader); a ``.json`` CSD manifest also carries ``"files"``: the identity
      of each file it names (``text``, ``audio``, ``vision``, ``labels``, relative to the manifest).
      The path string and the dataset's display name are not part of it.
    * without: ``{"synthetic": dataset, "size": ..., "seed": ...}`` (``load_dataset``'s defaults
      1.0 and 0 filled in, so leaving an option out and giving its default are the same data).

    Any other data option is kept under ``"options"``. A missing file raises ``FileNotFoundError``
    naming the path.
    """
    options = dict(data_options or {})
    extra = {k: options[k] for k in sorted(options) if k not in _LOCATION_OPTIONS}
    data_path = options.get("data_path")
    if data_path:
        path = Path(data_path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"data_path {path} does not exist")
        ident = {**file_identity(path), "format": data_format(path)}
        if path.suffix == ".json":
            files = _manifest_files(path)
            if files:
                ident["files"] = files
    elif dataset == "mosi-utterance":  # fetched by name: its registry's hashes are its content
        from .mosi_utterance import REGISTRY

        digest = hashlib.sha256("".join(h for _, h in sorted(REGISTRY.values())).encode()).hexdigest()
        ident = {"fetched": str(dataset), "sha256": digest}
    else:
        ident = {"synthetic": str(dataset), "size": float(options.get("size", 1.0)),
                 "seed": int(options.get("seed", 0)), "generator": GENERATOR_VERSION}
    if extra:
        ident["options"] = extra
    return ident


def _manifest_files(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # not a readable manifest: the loader reports it; its bytes are hashed already
    if not isinstance(manifest, dict):
        return {}
    files = {}
    for key in MANIFEST_FILE_KEYS:
        if isinstance(manifest.get(key), str):
            target = path.parent / manifest[key]
            if not target.exists():
                raise FileNotFoundError(f"{path}: manifest entry {key!r} names {target}, which does not exist")
            files[key] = file_identity(target)
    return files
