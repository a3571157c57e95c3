"""Where datasets are looked for and downloaded to."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from nas_env.errors import DatasetError

DATA_ENV_VAR = "NAS_ENV_DATA"
"""Environment variable holding the data root (CI and tests set it to ``../shared/data``)."""
DEFAULT_ROOT = Path.home() / ".cache" / "nas_env" / "data"
DOWNLOAD_TIMEOUT_S = 30.0
"""Socket timeout for downloads, so that a machine without internet fails fast instead of hanging."""


def data_roots(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Roots searched in order: ``data_dir`` if given, else ``$NAS_ENV_DATA``, else the user cache."""
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    env = os.environ.get(DATA_ENV_VAR)
    return [Path(env).expanduser()] if env else [DEFAULT_ROOT]


def search_roots(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Every root a read-only lookup tries, in order: ``data_dir``, ``$NAS_ENV_DATA``, the user cache.

    Unlike :func:`data_roots` (where a download goes), a file found in any of them will do, so a
    table kept in the cache folder is found even when ``$NAS_ENV_DATA`` points elsewhere.
    """
    env = os.environ.get(DATA_ENV_VAR)
    candidates = [data_dir, env, DEFAULT_ROOT]
    roots: list[Path] = []
    for candidate in candidates:
        if candidate:
            root = Path(candidate).expanduser()
            if root not in roots:
                roots.append(root)
    return roots


def md5sum(path: Path) -> str:
    """Hex md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: Path, md5: str) -> Path:
    """Download ``url`` to ``dest`` and verify its md5; a partial or corrupt file is never left.

    Raises:
        DatasetError: The download failed or the checksum did not match.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False, suffix=".part") as tmp:
        tmp_path = Path(tmp.name)
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                shutil.copyfileobj(response, tmp)
        except OSError as exc:
            tmp_path.unlink(missing_ok=True)
            raise DatasetError(f"could not download {url} to {dest}: {exc}") from exc
    got = md5sum(tmp_path)
    if got != md5:
        tmp_path.unlink(missing_ok=True)
        raise DatasetError(f"checksum mismatch for {url}: md5 {got}, expected {md5}")
    tmp_path.replace(dest)
    return dest


def extract_tar(archive: Path, into: Path) -> None:
    """Extract a tar archive safely (no members outside ``into``)."""
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
