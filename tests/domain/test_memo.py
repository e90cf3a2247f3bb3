from __future__ import annotations

from imagegate.domain.memo import BoundedMemo


def test_a_value_is_made_once_per_key_falsy_ones_too() -> None:
    made: list[int] = []

    def make(key: int) -> bool:
        made.append(key)
        return False

    memo: BoundedMemo[int, bool] = BoundedMemo(10)
    assert memo.get(1, make) is False and memo.get(1, make) is False
    assert made == [1]


def test_it_never_holds_more_than_its_limit() -> None:
    memo: BoundedMemo[int, int] = BoundedMemo(3)
    for key in range(10):
        assert memo.get(key, lambda k: k * 2) == key * 2
        assert len(memo) <= 3
