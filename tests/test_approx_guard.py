"""tests/conftest.py makes pytest.approx refuse torch tensors as the expected value.

pytest 9.2 iterates the expected value when a tolerance is given (its Decimal check), and
iterating a 0-d tensor raises TypeError; older pytest did not, so such a test passed on one
machine and failed on a fresh install. The guard fails it the same way on every pytest.
"""
import pytest
import torch


def test_plain_numbers_still_compare():
    assert 0.1 + 0.2 == pytest.approx(0.3)  # 0.30000000000000004
    assert [1.0, 2.0 + 1e-9] == pytest.approx([1.0, 2.0], rel=1e-6)
    assert {"AP": 0.5} == pytest.approx({"AP": 0.5})
    assert torch.tensor(0.5, dtype=torch.float64).item() == pytest.approx(0.5, rel=1e-10)


@pytest.mark.parametrize("expected", [torch.tensor(0.5), [0.5, torch.tensor(1.0)], {"AP": torch.tensor(0.5)}])
def test_tensor_expected_values_are_refused(expected):
    with pytest.raises(TypeError, match="torch.testing.assert_close"):
        pytest.approx(expected, rel=1e-6)
