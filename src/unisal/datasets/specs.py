"""Public histopathology data sets that ``unisal data`` can fetch, check and point a run at.

Each entry names its published files (URL, size, MD5 from the record's page), what to pass to
``--data`` once it is in place, how many images it holds, and its licence and citation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from unisal.data.readers import CHAOYANG_CLASSES, PATHMNIST_CLASSES
from unisal.registry import Registry


@dataclass(frozen=True)
class RemoteFile:
    url: str
    filename: str
    md5: str
    size: int | None = None  # bytes, where the record states it
    extract: bool = True  # a zip archive to extract (False: the file itself is the data, e.g. .npz)


@dataclass(frozen=True)
class DatasetSpec:
    """A public data set.

    Attributes:
        files: what to download; each archive is extracted into ``<root>/<name>/``.
        data: path to pass to ``--data``, relative to ``<root>/<name>/``.
        n_images: images the data set holds (checked by ``verify``).
        manual: instructions where the data cannot be downloaded automatically.
    """

    name: str
    description: str
    files: tuple[RemoteFile, ...] = ()
    data: str = ""
    n_images: int | None = None
    licence: str = ""
    citation: str = ""
    manual: str = ""
    classes: tuple[str, ...] = field(default_factory=tuple)


DATASETS: Registry[DatasetSpec] = Registry("data set")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    return DATASETS.register(spec.name)(spec)


def dataset_names() -> list[str]:
    return DATASETS.names()


def get_dataset(name: str) -> DatasetSpec:
    return DATASETS.get(name)


_ZENODO_KATHER = "https://zenodo.org/records/53169/files"
_ZENODO_NCT = "https://zenodo.org/records/1214456/files"
_ZENODO_MEDMNIST = "https://zenodo.org/records/10519652/files"

register_dataset(
    DatasetSpec(
        name="kather2016",
        description="Kather 2016 colorectal texture tiles (CRC5000): 5,000 tiles of 150 px, 8 classes",
        files=(
            RemoteFile(
                f"{_ZENODO_KATHER}/Kather_texture_2016_image_tiles_5000.zip?download=1",
                "Kather_texture_2016_image_tiles_5000.zip",
                md5="0ddbebfc56344752028fda72602aaade",
            ),
        ),
        data="Kather_texture_2016_image_tiles_5000",
        n_images=5000,
        licence="CC BY 4.0",
        citation="Kather et al., Multi-class texture analysis in colorectal cancer histology, Sci Rep 6:27988 (2016)",
    )
)
register_dataset(
    DatasetSpec(
        name="nct-crc-he-100k",
        description="NCT-CRC-HE-100K: 100,000 Macenko-normalised tiles of 224 px, 9 classes (11.7 GB)",
        files=(
            RemoteFile(
                f"{_ZENODO_NCT}/NCT-CRC-HE-100K.zip?download=1",
                "NCT-CRC-HE-100K.zip",
                md5="6fd702d11df6292bc054397ae038a464",
                size=11_690_284_003,
            ),
        ),
        data="NCT-CRC-HE-100K",
        n_images=100_000,
        licence="CC BY 4.0",
        citation="Kather et al., Predicting survival from colorectal cancer histology slides using deep learning, PLOS Med 16:e1002730 (2019)",
    )
)
register_dataset(
    DatasetSpec(
        name="crc-val-he-7k",
        description="CRC-VAL-HE-7K: 7,180 tiles of 224 px from other patients, 9 classes (800 MB)",
        files=(
            RemoteFile(
                f"{_ZENODO_NCT}/CRC-VAL-HE-7K.zip?download=1",
                "CRC-VAL-HE-7K.zip",
                md5="2fd1651b4f94ebd818ebf90ad2b6ce06",
                size=800_276_929,
            ),
        ),
        data="CRC-VAL-HE-7K",
        n_images=7180,
        licence="CC BY 4.0",
        citation="Kather et al., PLOS Med 16:e1002730 (2019)",
    )
)
for _size, _md5 in (
    (28, "a8b06965200029087d5bd730944a56c1"),
    (64, "55aa9c1e0525abe5a6b9d8343a507616"),
    (128, "ac42d08fb904d92c244187169d1fd1d9"),
    (224, "2c51a510bcdc9cf8ddb2af93af1eadec"),
):
    _file = "pathmnist.npz" if _size == 28 else f"pathmnist_{_size}.npz"
    register_dataset(
        DatasetSpec(
            name="pathmnist" if _size == 28 else f"pathmnist-{_size}",
            description=f"PathMNIST (MedMNIST v2{'+' if _size > 28 else ''}): 107,180 tiles of {_size} px from NCT-CRC-HE-100K / CRC-VAL-HE-7K, 9 classes",
            files=(RemoteFile(f"{_ZENODO_MEDMNIST}/{_file}?download=1", _file, md5=_md5, extract=False),),
            data=_file,
            n_images=107_180,
            licence="CC BY 4.0",
            citation="Yang et al., MedMNIST v2, Sci Data 10:41 (2023)",
            classes=tuple(PATHMNIST_CLASSES),
        )
    )
register_dataset(
    DatasetSpec(
        name="chaoyang",
        description="Chaoyang: 6,160 colon tiles of 512 px, 4 classes, labels by 3 pathologists (manual download)",
        data="",
        n_images=6160,
        licence="research use; see the data set's page",
        citation="Zhu et al., Hard sample aware noise robust learning for histopathology image classification, IEEE TMI 41:881 (2022)",
        manual=(
            "Chaoyang cannot be downloaded automatically: request it from the authors "
            "(https://bupt-ai-cz.github.io/HSA-NRL/), unpack it so that train/, test/, train.json and "
            "test.json lie in one folder, and pass that folder as --data (the JSON label files are read)."
        ),
        classes=tuple(CHAOYANG_CLASSES),
    )
)
