"""probe.memory.settle: long-lived objects frozen, and what a later settle finds dead is freed."""
import gc
import weakref

from probe.core import memory


class _Config:
    """Stands for a config: objects in a reference cycle, as dataclasses with back-links are."""

    def __init__(self) -> None:
        self.me = self


def test_settle_freezes_what_lives_and_a_later_settle_frees_what_was_replaced():
    try:
        old = _Config()
        gone = weakref.ref(old)
        memory.settle()
        assert gc.get_freeze_count() > 0
        assert gc.is_tracked(old)
        del old  # a reload replaced it; its cycle sits in the permanent generation
        gc.collect()
        assert gone() is not None  # frozen: a plain collection does not look at it
        memory.settle()
        assert gone() is None
    finally:
        gc.unfreeze()
