"""What the peer benchmarks (siglip_peers.py, clap_peers.py) share: one measurement as its own process, and the load
of the machine next to it (these machines are shared: a number without its load says little)."""
import json
import subprocess
import time


def run_json(cmd, env=None):
    """Runs cmd; returns the last JSON object line of its stdout, with wall_s added. Exits naming cmd on failure."""
    t = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1]
    j = json.loads(line)
    j["wall_s"] = time.time() - t
    return j


def loadavg():
    """The 1-minute load average."""
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])
