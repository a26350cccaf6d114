"""Public datasets of the paper profile: resumable, checksummed downloads into ``data/raw/<collection>/``.

* ``kodak``   — the 24 Kodak PhotoCD images (768×512), per-file SHA-256.
* ``clic2020`` — CLIC 2020 validation, professional + mobile (SHA-256 as pinned by tensorflow-datasets).
* ``bapps_2afc_val`` — the BAPPS 2AFC validation set of the LPIPS paper (ref/p0/p1/judge per distortion family).

Downloads go through :func:`vlic.fetch.fetch` (resumable, size- and SHA-256-checked, one line when offline).
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path

from vlic.fetch import DownloadError, RemoteFile, fetch

_KODAK_SHA256 = [
    ("a56e27cbf5f843c048b6af1d6e090760e9c92fadba88b7dee0205918a37523bd", 736501),
    ("4f4b74a79237e311d72cad958237b5f7088d8bce1c82305ebefe1a70e3022dfd", 617995),
    ("e25ca1ff2f0c0cb5fdfd5f9b0a0bb21ac4c3de3c84a67f35b09a85d3306249db", 502888),
    ("e3b946107c5d3441c022f678d0c3caf1e224d81b1604ba840a4f88e562de61aa", 637432),
    ("10349e963c5c813d327852f82c1795fa4148d69fedffc4c589bee458e3ac3d53", 785610),
    ("363510303b715d4cbc384e1ce227e466b613a09e1b71ae985882bf8e7fbd9b18", 618959),
    ("b77d3f006f42414bb242222e0482e750c0fb9e5ee8d4bed2f6f11c5605fe54a4", 566322),
    ("ba23983c76b4832ee0e8af0592664756841a16779acd69f792e268fb6d13d6e7", 788470),
    ("6a4361c2fc194feb4edaa9f9a4a0620fb9943e460ac7fdf037fb0f6dd6607a7d", 582899),
    ("9dfb70f5867c29ff9ed6313683f19b3d867849e40fbc0c4c54a4a89df341cf23", 593463),
    ("7936814b58b5387fce2e4e2488b4ec830dadd95fa9520f358ddb30990b50f2b6", 621023),
    ("d78c37c2f04f23761ed2367dd77e2db584ddd4c3950833fecf89f199a8126980", 531024),
    ("bc34a3ce58dea09dce1704c997171602de90cb34d0c8503a988b77f473d39b08", 822712),
    ("55a94550ff18f3246c4074fd32b77b0c74447c26b6ad274d564d999c0450ba6e", 692201),
    ("7538cbb80cb9103606c48b806eae57d56c885c7f90b9b3be70a41160f9cbb683", 612582),
    ("a89c7268ccd4718ba424a99fc4643c572cf692ca6eae887185ceb4e9f11d2e54", 534247),
    ("37afcc89fbdcb76d9518e04b2fc011027e2f4cd14b3b2f83cefd721641a47c5b", 602078),
    ("1a9258c365988961d87a0598725b609139c303ad48a5aad6c503c3b1a87849aa", 780947),
    ("b7450b264b1b0a411390d8931b112c27905a992520fc90569dc4b920aa32bbdc", 671476),
    ("3b46c71e3b92a563820ba32936be8330c586c41f938efd94be938386aae4328a", 492462),
    ("ac958597c82073f6bb65129c68f72b651db5b9efd82e11547d07350214bc268b", 637051),
    ("1cee58eb1f2d9c7ebb254d208a03c783ce6cf2c4d8c2cf45e235dd23b4ce1b29", 701970),
    ("e3111a2fd4da24af15d6459ef9eacfe54106b38e27b4a21821b75c3f5d2d5baf", 557596),
    ("1071c68372cc5a01435c2c225a5cf7d4bb803846ec08bb6b3d6721b156d7cb96", 706397),
]

DATASETS: dict[str, tuple[RemoteFile, ...]] = {
    "kodak": tuple(
        RemoteFile(f"https://r0k.us/graphics/kodak/kodak/kodim{i:02d}.png", f"kodim{i:02d}.png", sha, size)
        for i, (sha, size) in enumerate(_KODAK_SHA256, start=1)
    ),
    "clic2020": (
        RemoteFile(
            "https://data.vision.ee.ethz.ch/cvl/clic/professional_valid_2020.zip", "professional_valid_2020.zip",
            "00be38092ade2ab5163b65f7f6523d46c7bca147007f559adbb02c0afc236b7d", 134834429, extract=True,
        ),
        RemoteFile(
            "https://data.vision.ee.ethz.ch/cvl/clic/mobile_valid_2020.zip", "mobile_valid_2020.zip",
            "ff0280382eeb32fdceb28c81a7f47ac9ad86d933ebe901680845635d04e47a10", 236556531, extract=True,
        ),
    ),
    "bapps_2afc_val": (
        RemoteFile(
            "https://perceptual-similarity.s3.us-west-2.amazonaws.com/dataset/twoafc_val.tar.gz", "twoafc_val.tar.gz",
            "41486671b06de923e7ba277c4797d4d9d86d609863ba35ecdb576133f8b9d859", None, extract=True,
        ),
    ),
}


def _extract(archive: Path, into: Path) -> None:
    root = into.resolve()
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as z:
            for member in z.namelist():
                if member.startswith("__MACOSX/"):
                    continue
                if not (into / member).resolve().is_relative_to(root):
                    raise DownloadError(f"{archive.name}: refusing to extract '{member}' outside {into}")
                z.extract(member, into)
    else:
        with tarfile.open(archive) as t:
            t.extractall(into, filter="data")


def download(name: str, raw_dir: str | Path, flatten_images: bool = True) -> Path:
    """Download (and unpack) dataset ``name`` into ``raw_dir/name``; return that folder."""
    if name not in DATASETS:
        raise DownloadError(f"unknown dataset '{name}'; known: {', '.join(sorted(DATASETS))}")
    folder = Path(raw_dir) / name
    downloads = Path(raw_dir).parent / ".downloads" / name  # archives stay outside the versioned raw data
    for remote in DATASETS[name]:
        path = fetch(remote, downloads if remote.extract else folder)
        if remote.extract:
            _extract(path, folder)
    if flatten_images and name == "clic2020":
        # archives unpack to valid/*.png; the collection wants images directly in its folder
        for png in sorted(folder.rglob("*.png")):
            if png.parent != folder:
                shutil.move(str(png), folder / png.name)
        for sub in sorted((p for p in folder.iterdir() if p.is_dir()), reverse=True):
            shutil.rmtree(sub)
    return folder
