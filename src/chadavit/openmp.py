"""OpenMP's waiting policy, chosen before torch loads its OpenMP runtime (importing this module does it).

Why: torch's CPU kernels run on OpenMP threads that, by default, spin at every barrier. When other
processes share the cores (a busy node, data-loader workers, two shards on one box) the spinning
threads steal the cores the working threads need. With ``OMP_WAIT_POLICY=PASSIVE`` they sleep
instead: on the 2-core VM with two busy processes beside it, a ``chada_vit_moyen`` training step ran
1.5x (fp32) and 1.6x (bf16) faster, and on the quiet machine no slower (docs/models.md, "Speed").

The choice only takes effect when chadavit is imported before torch (the ``chadavit`` command, ``python
-m chadavit``, ``torchrun -m chadavit``); an ``OMP_WAIT_POLICY`` already set is respected.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY_ENV = "OMP_WAIT_POLICY"


def prefer_passive_wait() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless the user set a policy or torch is already loaded."""
    if WAIT_POLICY_ENV in os.environ or "torch" in sys.modules:
        return False
    os.environ[WAIT_POLICY_ENV] = "PASSIVE"
    return True


PASSIVE_WAIT_SET = prefer_passive_wait()
