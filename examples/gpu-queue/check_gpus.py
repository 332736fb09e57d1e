"""Print the GPUs this replica was given, then hold them for a few seconds.

Each replica sees only its own GPUs: CUDA_VISIBLE_DEVICES holds their UUIDs (in the order
CUDA should number them, CUDA_DEVICE_ORDER=PCI_BUS_ID) and GPU_COUNT how many there are.
With simulated GPUs the UUIDs start with GPU-sim-; with real ones, torch.cuda sees exactly
these devices.
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    replica = os.environ.get("TRAINYARD_REPLICA", "?")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    count = int(os.environ.get("GPU_COUNT", "0"))
    uuids = [u for u in visible.split(",") if u]
    assert len(uuids) == count, f"GPU_COUNT={count} but CUDA_VISIBLE_DEVICES={visible!r}"
    print(f"{replica}: {count} GPU(s): {', '.join(uuids) or 'none'}", flush=True)
    time.sleep(args.seconds)
    print(f"{replica}: done", flush=True)


if __name__ == "__main__":
    main()
