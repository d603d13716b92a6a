import pytest
from torch_models import tiny_input, tiny_net


@pytest.fixture
def net():
    return tiny_net()


@pytest.fixture
def x():
    return tiny_input()
