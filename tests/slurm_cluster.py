"""A real single-node SLURM cluster on this machine, for the tests of the SLURM executor.

:func:`start_cluster` installs Debian's ``slurmctld``, ``slurmd``, ``slurm-client`` and ``munge``
when they are missing (as root, with ``apt-get``), writes a minimal ``slurm.conf`` (this machine's
real hostname, CPUs and memory as ``slurmd -C`` reports them; ``auth/munge``,
``proctrack/linuxproc``, ``task/none``, no accounting) and starts ``munged``, ``slurmctld`` and
``slurmd`` in the foreground as child processes of the test session. Everything lives in one
private folder (state, spool, sockets, pid files, logs) and the daemons listen on free ports, so
the cluster touches nothing of the machine's own SLURM or munge set-up and two test sessions do
not collide. Clients find it through ``SLURM_CONF``.

Two partitions share the node: ``debug`` (default; its jobs can be preempted: REQUEUE, with a
grace time during which the job's ``--signal`` is sent, ``preempt_send_user_signal``) and
``urgent`` (a higher priority tier whose jobs preempt ``debug`` jobs).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
BINARIES = ("slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scancel", "scontrol", "srun",
            "munged")
REQUEUE_DELAY_S = 10
"""``cred_expire``: also how long a requeued job waits before it may start again (SLURM's
default, 120 s, would make the preemption test wait two minutes)."""
GRACE_TIME_S = 60
"""Preemption grace time of the ``debug`` partition: the preempted job gets its signal, then
this long to checkpoint and requeue itself before SLURM kills (and requeues) it."""


class ClusterUnavailable(RuntimeError):
    """SLURM cannot be installed or started here (the message says why)."""


def _run(cmd: list[str], timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


def ensure_installed() -> None:
    """Install the Debian packages when a binary is missing (root and apt-get needed)."""
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise ClusterUnavailable(f"{', '.join(missing)} not installed and not root (apt-get)")
    if shutil.which("apt-get") is None:
        raise ClusterUnavailable(f"{', '.join(missing)} not installed and no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends",
               "-o", "DPkg::Lock::Timeout=300", *PACKAGES]
    try:
        done = _run(install, timeout=600, env=env)
        if done.returncode != 0:  # a stale package index: refresh it once
            _run(["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=300"], timeout=600,
                 env=env)
            done = _run(install, timeout=600, env=env)
    except subprocess.TimeoutExpired as err:
        raise ClusterUnavailable(f"apt-get timed out: {err}") from None
    if done.returncode != 0:
        raise ClusterUnavailable(f"apt-get install {' '.join(PACKAGES)} failed: "
                                 f"{(done.stderr or done.stdout).strip()[-500:]}")
    still = [b for b in BINARIES if shutil.which(b) is None]
    if still:
        raise ClusterUnavailable(f"installed {' '.join(PACKAGES)} but {still} still missing")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def node_line() -> str:
    """This machine as ``slurmd -C`` sees it: ``NodeName=... CPUs=... RealMemory=...``."""
    done = _run(["slurmd", "-C"])
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("NodeName=")), None)
    if done.returncode != 0 or line is None:
        raise ClusterUnavailable(f"slurmd -C failed: {done.stderr.strip()[-300:]}")
    return line.strip()


@dataclass
class SlurmCluster:
    """A running single-node cluster; ``env`` holds the ``SLURM_CONF`` its clients need."""

    root: Path
    node: str
    cpus: int
    memory_mb: int
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> str:
        """Run a SLURM client command against this cluster; its stdout."""
        done = _run(list(cmd), timeout=timeout, env=self.env)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr}")
        return done.stdout

    def jobs(self) -> dict[str, str]:
        """``{job id: state}`` of every job slurmctld still knows (array elements one by one)."""
        out = self.run("squeue", "--noheader", "--array", "--states=all", "--format=%i|%T")
        return dict(line.split("|", 1) for line in out.split())

    def log_tails(self, lines: int = 40) -> str:
        """The last lines of every daemon log (for a failing test's report)."""
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            log = path.with_suffix(".log")  # -D copies the log to stdout: show it once
            if path.suffix == ".stdout" and log.is_file() and log.stat().st_size:
                continue
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"==> {path} <==\n" + "\n".join(text))
        return "\n".join(parts)

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait until the node is up and idle."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise ClusterUnavailable(f"{name} exited ({proc.returncode}):\n"
                                             + self.log_tails(10))
            done = _run(["sinfo", "--noheader", "--Node", "--format=%T"], env=self.env)
            state = done.stdout.strip()  # one line per partition
            if done.returncode == 0 and set(state.split()) == {"idle"}:
                return
            time.sleep(0.5)
        raise ClusterUnavailable(f"node not idle after {timeout:.0f} s (sinfo: {state!r}):\n"
                                 + self.log_tails(10))

    def stop(self) -> None:
        """Cancel what still runs, stop the daemons (children of this process)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            _run(["scancel", "--full", f"--user={os.getuid()}"], env=self.env)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    states = set(self.jobs().values())
                except (RuntimeError, subprocess.TimeoutExpired):
                    break
                if not states & {"RUNNING", "COMPLETING", "PENDING", "CONFIGURING"}:
                    break
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def write_config(root: Path, node: str) -> None:
    """``slurm.conf`` of the single-node cluster under ``root``."""
    host = node.split()[0].split("=", 1)[1]
    node = " ".join(w for w in node.split() if not w.startswith("UpTime="))
    conf = f"""\
ClusterName=amurotest
SlurmctldHost={host}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/run/munge.sock,cred_expire={REQUEUE_DELAY_S}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=5
SchedulerParameters=sched_interval=2,bf_interval=2
JobRequeue=1
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
{node} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP PriorityTier=1 \
PreemptMode=REQUEUE GraceTime={GRACE_TIME_S}
PartitionName=urgent Nodes={host} MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF
"""
    (root / "slurm.conf").write_text(conf)


def start_cluster() -> SlurmCluster:
    """Install (if needed) and start a single-node cluster; raise :class:`ClusterUnavailable`."""
    ensure_installed()
    if os.geteuid() != 0:
        raise ClusterUnavailable("slurmd must run as root to start jobs")
    node = node_line()
    # munged insists on a socket folder every user can traverse (pytest's tmp dirs are 0700)
    root = Path(tempfile.mkdtemp(prefix="amuro-slurm-"))
    root.chmod(0o755)
    for sub in ("run", "state", "spool", "log"):
        (root / sub).mkdir()
    (root / "run").chmod(0o755)
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    write_config(root, node)
    fields = dict(w.split("=", 1) for w in node.split())
    cluster = SlurmCluster(root, fields["NodeName"], int(fields["CPUs"]),
                           int(fields["RealMemory"]))
    env = cluster.env
    daemons = {
        "munged": ["munged", "--foreground", f"--key-file={key}",
                   f"--socket={root}/run/munge.sock", f"--pid-file={root}/run/munged.pid",
                   f"--log-file={root}/log/munged.log", f"--seed-file={root}/state/munge.seed"],
        "slurmctld": ["slurmctld", "-D", "-f", str(cluster.conf)],
        "slurmd": ["slurmd", "-D", "-f", str(cluster.conf)],
    }
    try:
        for name, cmd in daemons.items():
            with open(root / "log" / f"{name}.stdout", "w") as out:
                cluster.procs[name] = subprocess.Popen(
                    cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
            if name == "munged":
                _wait_for(root / "run" / "munge.sock", cluster)
        cluster.wait_idle()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait_for(path: Path, cluster: SlurmCluster, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise ClusterUnavailable(f"{path} did not appear:\n" + cluster.log_tails(10))
        time.sleep(0.1)
