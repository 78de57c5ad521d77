"""Keep the garbage collector off the objects a running probe holds for its whole life.

After start-up the config, each monitor's check, the compiled templates and the store's
caches live as long as the process, yet every full collection walks them again: at
10,000 monitors that was about a tenth of the CPU per check (BENCHMARKS.md, cost per
check). `gc.freeze()` moves what exists now into a permanent generation that collections
skip; garbage made later is collected as before.
"""
from __future__ import annotations

import gc


def settle() -> None:
    """Call once started, and again after a config reload: unfreezing first lets what the
    previous settle froze and is now garbage (the replaced config) be collected."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
