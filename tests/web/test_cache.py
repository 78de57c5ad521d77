"""The render cache's single flight, driven by renders the test holds: concurrent misses for one
key share one render, and share its failure too."""
import asyncio

from probe.web.cache import RenderCache

CROWD = 30


class HeldRender:
    """A render that waits until the test lets it finish, then returns a page or raises."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.fail = fail

    async def __call__(self) -> tuple[bytes, str]:
        self.calls += 1
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return f"<p>render {self.calls}</p>".encode(), "text/html"


async def crowd(cache: RenderCache, render: HeldRender) -> list:
    tasks = [asyncio.create_task(cache.get("/", render)) for _ in range(CROWD)]
    await asyncio.sleep(0)  # every task runs up to its first wait: all 30 are now inside get()
    assert render.calls == 1  # while the render is still going
    render.release.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_concurrent_misses_share_one_render_and_get_the_same_entry():
    cache, render = RenderCache(), HeldRender()
    entries = await crowd(cache, render)
    assert render.calls == 1 and cache.renders == 1
    assert all(entry is entries[0] for entry in entries) and entries[0].body == b"<p>render 1</p>"


async def test_every_waiter_of_a_failed_render_gets_its_error_once_and_the_next_miss_renders_again():
    cache, failing = RenderCache(), HeldRender(fail=RuntimeError("database is locked"))
    outcomes = await crowd(cache, failing)
    assert len(outcomes) == CROWD and all(outcome is failing.fail for outcome in outcomes)
    assert failing.calls == 1 and cache.renders == 0  # nothing was cached

    working = HeldRender()
    working.release.set()
    entry = await cache.get("/", working)
    assert working.calls == 1 and cache.renders == 1 and entry.body == b"<p>render 1</p>"
