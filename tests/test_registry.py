import pytest

from kpdet.registry import Registry


def make():
    reg = Registry("thing")

    @reg.register("square", aliases=("sq",))
    def square(side=1):
        return side * side

    return reg


def test_build_from_name_dict_and_alias():
    reg = make()
    assert reg.build("square") == 1
    assert reg.build({"type": "sq", "side": 3}) == 9
    assert reg.build({"type": "square"}, side=2) == 4  # extra fills missing params
    assert reg.build({"type": "square", "side": 5}, side=2) == 25  # spec wins over extra


def test_unknown_name_lists_known_names():
    with pytest.raises(KeyError, match="unknown thing 'circle'; known: sq, square"):
        make().get("circle")


def test_duplicate_registration_raises():
    reg = make()
    with pytest.raises(KeyError, match="already registered"):
        reg.register("sq")(lambda: 0)
