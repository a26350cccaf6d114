"""The laptop profile's raw data: colour photographs that ship *inside* installed Python packages.

No network is needed: :func:`assemble` copies the files byte for byte out of scikit-image, scikit-learn and
matplotlib into ``data/raw/packaged/``. Every file is checked against the SHA-256 recorded here, so the assembled
folder is identical on every machine and its DVC hash matches ``data.dvc`` (``dvc status`` stays clean on a fresh
clone). If a future package release ships a different file, assembly stops and says which one.

Deliberately left out: synthetic or non-photographic images (``color.png``, textures, text), 128-px icons, and
``motorcycle_right.png`` — the right view of the stereo pair whose left view is included; keeping both would put a
near-duplicate of one photo on each side of a train/holdout split.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from vlic.fetch import sha256_of


class PackagedDataError(RuntimeError):
    """A packaged photograph is missing or differs from the recorded checksum."""


@dataclass(frozen=True)
class PackagedPhoto:
    name: str          # stable short name used in params.yaml (e.g. in data.holdout_images)
    package: str       # importable package that ships the file
    subdir: str        # folder inside the package
    filename: str
    sha256: str
    size: int
    credit: str

    @property
    def suffix(self) -> str:
        return Path(self.filename).suffix.lower()


_SK = "skimage"
PHOTOS: tuple[PackagedPhoto, ...] = (
    PackagedPhoto("astronaut", _SK, "data", "astronaut.png",
                  "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5", 791555,
                  "Eileen Collins, NASA (public domain), via scikit-image"),
    PackagedPhoto("chelsea", _SK, "data", "chelsea.png",
                  "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb", 240512,
                  "Chelsea the cat, Stéfan van der Walt (CC0), via scikit-image"),
    PackagedPhoto("coffee", _SK, "data", "coffee.png",
                  "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7", 466706,
                  "Coffee cup, Rachel Michetti (CC0), via scikit-image"),
    PackagedPhoto("rocket", _SK, "data", "rocket.jpg",
                  "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c", 112525,
                  "Falcon 9 launch, SpaceX (CC0), via scikit-image"),
    PackagedPhoto("motorcycle", _SK, "data", "motorcycle_left.png",
                  "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179", 644701,
                  "Middlebury 2014 stereo, left view (Scharstein et al.), via scikit-image"),
    PackagedPhoto("hubble", _SK, "data", "hubble_deep_field.jpg",
                  "3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4", 527940,
                  "Hubble eXtreme Deep Field, NASA (public domain), via scikit-image"),
    PackagedPhoto("retina", _SK, "data", "retina.jpg",
                  "38a07f36f27f095e818aea7b96d34202c05176d30253c66733f2e00379e9e0e6", 269564,
                  "Human retina, Häggström (CC BY 3.0), via scikit-image"),
    PackagedPhoto("ihc", _SK, "data", "ihc.png",
                  "f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef", 477916,
                  "Immunohistochemistry stain, Heine (public domain), via scikit-image"),
    PackagedPhoto("china", "sklearn.datasets", "images", "china.jpg",
                  "8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29", 196653,
                  "Summer Palace, Beijing (CC BY 2.0), via scikit-learn"),
    PackagedPhoto("flower", "sklearn.datasets", "images", "flower.jpg",
                  "a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638", 142987,
                  "Flower (CC BY 2.0), via scikit-learn"),
    PackagedPhoto("grace_hopper", "matplotlib", "mpl-data/sample_data", "grace_hopper.jpg",
                  "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130", 61306,
                  "Grace Hopper, U.S. Navy (public domain), via matplotlib"),
)

COLLECTION = "packaged"
MANIFEST = "manifest.json"


def photo_names() -> list[str]:
    return [p.name for p in PHOTOS]


def locate(photo: PackagedPhoto) -> Path:
    """Path of the photo inside its installed package (without importing the package)."""
    spec = importlib.util.find_spec(photo.package)
    if spec is None or not spec.submodule_search_locations:
        raise PackagedDataError(
            f"photo '{photo.name}' ships with the package '{photo.package}', which is not installed "
            f"(run `make install`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / photo.subdir / photo.filename
    if not path.is_file():
        raise PackagedDataError(f"photo '{photo.name}': the installed '{photo.package}' has no {photo.subdir}/{photo.filename}")
    return path


def assemble(raw_dir: str | Path) -> Path:
    """Copy every photo into ``raw_dir/packaged/`` (checked by SHA-256) and write its manifest; return the folder.

    Idempotent: files already present with the right checksum are left untouched.
    """
    dest = Path(raw_dir) / COLLECTION
    dest.mkdir(parents=True, exist_ok=True)
    for photo in PHOTOS:
        target = dest / f"{photo.name}{photo.suffix}"
        if target.is_file() and sha256_of(target) == photo.sha256:
            continue
        src = locate(photo)
        got = sha256_of(src)
        if got != photo.sha256:
            raise PackagedDataError(
                f"photo '{photo.name}': {src} has sha256 {got[:12]}…, expected {photo.sha256[:12]}… — "
                f"the installed '{photo.package}' ships a different file; update PHOTOS in {__name__} "
                f"and re-run `dvc add data/raw`"
            )
        shutil.copyfile(src, target)
    manifest = {
        "collection": COLLECTION,
        "note": "assembled by `vlic data assemble` from files shipped inside installed packages",
        "photos": [
            {k: v for k, v in asdict(p).items() if k not in ("subdir",)} | {"file": f"{p.name}{p.suffix}"}
            for p in PHOTOS
        ],
    }
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    mpath = dest / MANIFEST
    if not mpath.is_file() or mpath.read_text(encoding="utf-8") != text:
        mpath.write_text(text, encoding="utf-8")
    extra = sorted(p.name for p in dest.iterdir() if p.name != MANIFEST and p.stem not in photo_names())
    if extra:
        raise PackagedDataError(f"'{dest}' holds files that are not packaged photos: {', '.join(extra)}")
    return dest
