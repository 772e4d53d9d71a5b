"""`xfer-nb lab`: JupyterLab on the notebooks, on 127.0.0.1 with a token."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from xfer_nb.notebook_runner import KERNEL_NAME, NOTEBOOKS_DIR

def lab_command(port: int = 8888, token: str | None = None,
                root: str | os.PathLike | None = None) -> tuple[list[str], dict[str, str], str]:
    """The JupyterLab command line, its environment and its URL: bound to 127.0.0.1,
    with a token (passed in the environment, not on the command line where `ps` shows
    it), the notebooks folder as root. The venv's Python, so the project kernel is there."""
    import secrets

    token = token or secrets.token_urlsafe(24)
    root = Path(root or NOTEBOOKS_DIR).resolve()
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={int(port)}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
           "--ServerApp.allow_remote_access=False",
           "--ContentsManager.pre_save_hook=xfer_nb.lab_hooks.strip_outputs"]   # tracked notebooks stay clean
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers run as root; Jupyter refuses without this
        cmd.append("--allow-root")
    env = {**os.environ, "JUPYTER_TOKEN": token}
    return cmd, env, f"http://127.0.0.1:{int(port)}/lab?token={token}"


def lab(port: int = 8888, root: str | os.PathLike | None = None) -> int:
    """Start JupyterLab in the foreground (Ctrl-C stops it)."""
    import subprocess

    cmd, env, url = lab_command(port, root=root)
    print(f"JupyterLab on the notebooks (kernel {KERNEL_NAME!r}): {url}", flush=True)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0
