"""Fixtures shared by the export step's tests."""

import pytest

from visualbyte_export.fixture import FIXTURE_SIZE, write_synthetic_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A tiny synthetic rendered dataset: 6 classes, 4 rows of each modality a class, 32 px."""
    return write_synthetic_dataset(
        tmp_path_factory.mktemp("ds"), num_classes=6, per_class=4, size=FIXTURE_SIZE
    )
