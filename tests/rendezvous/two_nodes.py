"""Two torchrun agents (``--nnodes=2``) rendezvousing through etcd at ``$ETCD_ENV_ENDPOINT``.

Usage: ``etcd-env run -- python tests/rendezvous/two_nodes.py OUT_DIR [RUN_ID]``. Exits 0
only if both agents succeed and every rank wrote the all_reduce sum it checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

JOB = Path(__file__).with_name("allreduce_job.py")
NODES = 2


def torchrun() -> list[str]:
    # torchrun is the console script of torch.distributed.run, installed beside this Python.
    script = Path(sys.executable).with_name("torchrun")
    if not script.exists():
        raise SystemExit(f"torchrun not found beside {sys.executable}: install torch into this environment")
    return [str(script)]


def run_agents(
    endpoint: str, out_dir: Path, run_id: str, rdzv_conf: str = "read_timeout=30", *, capture: bool = False
) -> tuple[list[int], list[str]]:
    """Start the agents, wait for them; return their exit codes and (with ``capture``) their output."""
    out_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        *torchrun(),
        f"--nnodes={NODES}",
        "--nproc-per-node=1",
        "--rdzv-backend=etcd-v2",
        f"--rdzv-endpoint={endpoint}",
        f"--rdzv-id={run_id}",
        f"--rdzv-conf={rdzv_conf}",
        "--local-addr=127.0.0.1",
        "--max-restarts=0",
        "--monitor-interval=0.2",
        # Without it each agent leaves a torchelastic_* log directory in the system temp dir.
        f"--log-dir={out_dir / 'logs'}",
        str(JOB),
        str(out_dir),
    ]
    pipe = subprocess.PIPE if capture else None
    agents = [
        subprocess.Popen(argv, stdout=pipe, stderr=subprocess.STDOUT if capture else None, text=True)
        for _ in range(NODES)
    ]
    try:
        outputs = [agent.communicate(timeout=180)[0] or "" for agent in agents]
    finally:
        for agent in agents:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
    return [agent.returncode for agent in agents], outputs


def main() -> int:
    out_dir = Path(sys.argv[1])
    run_id = sys.argv[2] if len(sys.argv) > 2 else f"two-nodes-{uuid.uuid4().hex[:12]}"
    endpoint = os.environ.get("ETCD_ENV_ENDPOINT")
    if not endpoint:
        raise SystemExit("ETCD_ENV_ENDPOINT is not set: run this under `etcd-env run --` or a managed etcd")
    codes, _ = run_agents(endpoint, out_dir, run_id)
    results = [json.loads(path.read_text()) for path in sorted(out_dir.glob("rank*.json"))]
    print(json.dumps({"exit_codes": codes, "results": results}))
    ok = codes == [0] * NODES and len(results) == NODES and all(r["sum"] == 3.0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
