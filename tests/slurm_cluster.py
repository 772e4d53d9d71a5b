"""A real one-node Slurm cluster for the tests, from Debian's `slurm-wlm`.

`SlurmCluster(folder).start()` writes a munge key and a `slurm.conf` into `folder`, starts
`munged`, `slurmctld` and `slurmd` in the foreground (so their pids are ours), and waits
until the node is idle; `env()` points the client tools (`sbatch`, `squeue`, `scontrol`) at
it through `SLURM_CONF`. `stop()` cancels what is still queued and ends the three daemons
by their pids, never by name: other clusters (other test sessions) may share the machine.

The node is this machine as `slurmd -C` sees it (its real CPUs and memory). Jobs run as
root with `proctrack/linuxproc` and `task/none` (no cgroups needed), `JobRequeue=1` so
`scontrol requeue` puts a running job back in the queue. Everything the daemons write
(state, spool, logs, the munge socket) stays in `folder`; the ports are free ones.

`unavailable()` says in one line why no cluster can start here (not root, or slurm-wlm
not installed), or returns None.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "srun", "sinfo")
PARTITION = "debug"


def _find(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)),
                                      None)


def unavailable() -> str | None:
    """None when a test cluster can start here, else one line saying why not."""
    missing = [name for name in DAEMONS + CLIENTS if _find(name) is None]
    if missing:
        return (f"Slurm is not installed ({', '.join(missing)} not found); `apt-get install slurm-wlm` as root "
                "(.ci/run does)")
    if os.geteuid() != 0:
        return "the one-node test cluster runs slurmd/slurmctld/munged as root, and this is not root"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    """munged + slurmctld + slurmd for one node, configured in `folder`."""

    def __init__(self, folder: str | os.PathLike, partition: str = PARTITION):
        self.folder = Path(folder).resolve()
        self.partition = partition
        self.conf = self.folder / "slurm.conf"
        self.munge_socket = self.folder / "munge" / "munge.socket"
        self.procs: dict[str, subprocess.Popen] = {}
        self.node = socket.gethostname().split(".")[0]

    # ------------------------------------------------------------------ config
    def node_line(self) -> str:
        """`slurmd -C`'s description of this machine (CPUs, sockets, cores, RealMemory)."""
        out = subprocess.run([_find("slurmd"), "-C"], capture_output=True, text=True, timeout=30, check=True)
        line = next(line for line in out.stdout.splitlines() if line.startswith("NodeName="))
        fields = line.split()[1:]  # drop slurmd's own NodeName; ours is the short host name
        return f"NodeName={self.node} NodeAddr=127.0.0.1 " + " ".join(fields) + " State=UNKNOWN"

    def write_config(self) -> None:
        for sub in ("munge", "state", "spool", "log"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        self.folder.chmod(0o700)
        key = self.folder / "munge" / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        (self.folder / "plugstack.conf").write_text("")  # not /etc/slurm's
        log = self.folder / "log"
        self.conf.write_text("\n".join([
            "ClusterName=xfernbtest",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            # cred_expire: also how long a requeued job waits before it may start again (default 120 s)
            f"AuthInfo=socket={self.munge_socket},cred_expire=10",
            f"StateSaveLocation={self.folder / 'state'}",
            f"SlurmdSpoolDir={self.folder / 'spool'}",
            f"SlurmctldPidFile={self.folder / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.folder / 'slurmd.pid'}",
            f"SlurmctldLogFile={log / 'slurmctld.log'}",
            f"SlurmdLogFile={log / 'slurmd.log'}",
            f"PlugStackConfig={self.folder / 'plugstack.conf'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=batch_sched_delay=0,sched_interval=2",  # start jobs within seconds
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "JobRequeue=1",
            "ReturnToService=2",
            "KillWait=5",             # seconds from SIGTERM to SIGKILL when a job is ended or requeued
            "MinJobAge=600",          # finished jobs stay visible to scontrol for the test's checks
            "SlurmctldTimeout=30",
            "SlurmdTimeout=60",
            "MailProg=/bin/true",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            self.node_line(),
            f"PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]))

    # ------------------------------------------------------------------ daemons
    def env(self) -> dict[str, str]:
        """os.environ plus SLURM_CONF: the client tools (and submitit's) talk to this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def _start(self, name: str, args: list[str]) -> None:
        log = open(self.folder / "log" / f"{name}.out", "ab")
        self.procs[name] = subprocess.Popen([_find(name), *args], stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=self.env(), start_new_session=True)
        log.close()

    def start(self, timeout: float = 60.0) -> "SlurmCluster":
        why = unavailable()
        if why:
            raise RuntimeError(why)
        self.write_config()
        m = self.folder / "munge"
        self._start("munged", ["--foreground", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={m / 'munge.key'}", f"--pid-file={m / 'munged.pid'}",
                               f"--seed-file={m / 'munged.seed'}", f"--log-file={m / 'munged.log'}"])
        try:
            self._wait(lambda: self.munge_socket.exists(), timeout, "munged to open its socket")
            self._start("slurmctld", ["-D", "-i", "-f", str(self.conf)])
            self._wait(lambda: self._ok(["scontrol", "ping"], "UP"), timeout, "slurmctld to answer")
            self._start("slurmd", ["-D", "-f", str(self.conf), "-N", self.node])
            self._wait(lambda: self._ok(["sinfo", "--noheader", "--format=%t", f"--nodes={self.node}"], "idle"),
                       timeout, "the node to be idle")
        except BaseException:
            self.stop()
            raise
        return self

    def _ok(self, cmd: list[str], expect: str) -> bool:
        out = subprocess.run(cmd, capture_output=True, text=True, env=self.env(), timeout=30)
        return out.returncode == 0 and expect in out.stdout

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}) while waiting for {what}:\n{self.logs()}")
            if ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}:\n{self.logs()}")

    def logs(self, tail: int = 30) -> str:
        parts = []
        for path in sorted((self.folder / "log").glob("*")) + [self.folder / "munge" / "munged.log"]:
            if path.is_file():
                lines = path.read_text(errors="replace").splitlines()[-tail:]
                parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel every job of this cluster, then end slurmd, slurmctld and munged by pid."""
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            subprocess.run(["scancel", "--full", f"--partition={self.partition}"], env=self.env(),
                           capture_output=True, timeout=30)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.jobs():
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    # ------------------------------------------------------------------ clients
    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> str:
        out = subprocess.run(list(cmd), capture_output=True, text=True, env=self.env(), timeout=timeout)
        if check and out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()}")
        return out.stdout

    def jobs(self) -> list[str]:
        """Ids of this cluster's pending or running jobs (array tasks one by one)."""
        out = self.run("squeue", "--noheader", "--array", "--format=%i", check=False)
        return [line.strip() for line in out.splitlines() if line.strip()]

    def job_field(self, job_id: str, name: str) -> str | None:
        """One `scontrol show job` field (e.g. JobState, Restarts) of a job or array task."""
        out = self.run("scontrol", "show", "job", "--oneliner", job_id, check=False)
        for token in out.split():
            key, _, value = token.partition("=")
            if key == name:
                return value
        return None

    def wait_idle(self, timeout: float) -> None:
        """Until no job of this cluster is pending or running."""
        deadline = time.monotonic() + timeout
        while self.jobs():
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still queued after {timeout:.0f} s: {self.jobs()}\n"
                                   + self.run("squeue", "--array", check=False))
            time.sleep(1.0)
