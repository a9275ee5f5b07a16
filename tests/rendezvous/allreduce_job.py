"""The worker of the torchrun tests: a gloo all_reduce whose result each rank checks and records."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist


def main() -> int:
    out_dir = Path(sys.argv[1])
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    value = torch.tensor([float(rank + 1)])
    dist.all_reduce(value)
    expected = world * (world + 1) / 2
    (out_dir / f"rank{rank}.json").write_text(json.dumps({"rank": rank, "world": world, "sum": value.item()}))
    dist.destroy_process_group()
    return 0 if value.item() == expected else 3


if __name__ == "__main__":
    sys.exit(main())
