from __future__ import annotations

import pytest

from alertline.avro import SingleObjectCodec


@pytest.fixture(scope="session")
def codec() -> SingleObjectCodec:
    return SingleObjectCodec()
