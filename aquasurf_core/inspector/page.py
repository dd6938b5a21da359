"""The inspector (:mod:`aquasurf_core.inspector.widget`) in a browser: served by Voila as a
web page of its own, or in JupyterLab.

* :func:`serve` writes a one-cell notebook that displays ``Inspector(bench=...)``, runs Voila on
  it (``python -m voila``, this interpreter, bound to ``127.0.0.1``; its kernel is this
  interpreter too) and returns a :class:`PageServer` once the server answers. Every visit of
  the page starts a kernel that runs the notebook: it shows up after the benchmark is loaded
  and embedded (seconds; about 20 s more the first time a benchmark is embedded). The plot's
  first edit is drawn as a new FigureWidget (``renew_first_edit``): Voila's view of the
  widget made while the notebook ran often draws no edit. ``aquasurf inspect`` is ``serve``
  until Ctrl-C.
* :func:`serve_lab` runs JupyterLab on a folder (a token, a free loopback port, settings and
  workspaces of its own), for the browser tests and screenshots of the inspector in a
  notebook.

The Voila page uses a template of its own (:data:`VOILA_TEMPLATE`, Voila's ``lab`` template
with two changes) so that it works offline and its console stays quiet:

* Voila's ``lab`` template links Font Awesome from a CDN (an error, and a wait, offline); the
  page needs no icon font (the inspector's buttons have no icons), so the links are left out.
* Voila 0.5.13 is built on JupyterLab 4.2.5, while the newest widget extensions (Voila's own
  widgets manager, and jupyterlab_widgets 3.0.17) are built on JupyterLab 4.5-4.6: webpack's
  module federation then warns once per shared ``@jupyterlab/*`` singleton ("Unsatisfied
  version 4.2.5 from _JUPYTERLAB.CORE_OUTPUT of shared singleton module ... (required
  ^4.6.2)", 13 of them) and uses the 4.2.5 core, which is what these extensions need at run
  time. No released set of these packages agrees (Voila 0.5.13 and jupyterlab_widgets
  3.0.17 are the newest; voila-dashboards/voila#1514); leaving out the federated
  jupyterlab-manager breaks the widgets (Voila's manager loads the controls from it). So the
  template drops exactly these warnings, and only for ``@jupyterlab/*`` modules of the core:
  a version mismatch of any other shared module (``@jupyter-widgets/base``, say) still shows.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import webbrowser
from dataclasses import dataclass, field
from pathlib import Path

from aquasurf_core.paths import cache_dir

__all__ = ["PageServer", "VOILA_TEMPLATE", "free_port", "serve", "serve_lab",
           "write_kernel_spec", "write_notebook"]

KERNEL_NAME = "aquasurf-inspector"
CELL = """\
from aquasurf_core.inspector import Inspector
from aquasurf_core.paths import set_cache_dir

set_cache_dir({cache!r})
Inspector(bench={bench!r}, renew_first_edit=True)
"""
#: The JavaScript regular expression (source, between the slashes) of the module federation
#: warnings the Voila template drops (module docstring): a core ``@jupyterlab/*`` singleton
#: found in another version, or not found at all.
_CORE_VERSION_WARNINGS = (
    r"^(Unsatisfied version \S+ from _JUPYTERLAB\.CORE_OUTPUT of shared singleton module "
    r"@jupyterlab\/[a-z-]+ \(required [^)]*\)$"
    r"|No satisfying version \([^)]*\) of shared module @jupyterlab\/[a-z-]+ found in shared "
    r"scope default\.\nAvailable versions: \S+ from _JUPYTERLAB\.CORE_OUTPUT$)"
)
#: The Voila template ``aquasurf`` (module docstring): file name -> text.
VOILA_TEMPLATE = {
    "conf.json": json.dumps({"base_template": "lab"}),
    "index.html.j2": """\
{%- extends 'voila/templates/lab/index.html.j2' -%}
{#- Voila's lab template, offline and without the known version warnings:
    aquasurf_core.inspector.page -#}
{%- set fa_all = '<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/@fortawesome/'
                 ~ 'fontawesome-free@^5/css/all.min.css" type="text/css" />' -%}
{%- set fa_shims = '<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/@fortawesome/'
                   ~ 'fontawesome-free@^5/css/v4-shims.min.css" type="text/css" />' -%}

{%- block html_head_js_logs -%}
{{ super() }}
<script>
  (() => {
    const core = /""" + _CORE_VERSION_WARNINGS + """/;
    const warn = console.warn;
    console.warn = (...args) => {
      if (args.length === 1 && typeof args[0] === "string" && core.test(args[0])) return;
      warn(...args);
    };
  })();
</script>
{%- endblock html_head_js_logs -%}

{%- block notebook_css -%}
{{ super() | replace(fa_all, '') | replace(fa_shims, '') }}
{%- endblock notebook_css -%}
""",
}


def free_port(port: int = 0) -> int:
    """``port`` if it is free on 127.0.0.1 now, else ``OSError``; ``0``: a free port the OS
    picks."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as err:
            raise OSError(f"port {port} on 127.0.0.1 is not available ({err.strerror})") \
                from err
        return int(sock.getsockname()[1])


def write_kernel_spec(directory: str | os.PathLike) -> Path:
    """A kernel spec ``aquasurf-inspector`` running this interpreter, under
    ``<directory>/jupyter/kernels/``; returns ``<directory>/jupyter`` (for ``JUPYTER_PATH``)."""
    root = Path(directory) / "jupyter"
    spec = root / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "aquasurf inspector", "language": "python"}))
    return root


def write_notebook(path: str | os.PathLike, cells: list[str]) -> Path:
    """A notebook of code ``cells`` (no outputs) on the ``aquasurf-inspector`` kernel."""
    notebook = {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": KERNEL_NAME, "display_name": "aquasurf inspector",
                                    "language": "python"},
                     "language_info": {"name": "python"}},
        "cells": [{"cell_type": "code", "id": f"cell-{i}", "metadata": {}, "outputs": [],
                   "execution_count": None, "source": source}
                  for i, source in enumerate(cells)],
    }
    path = Path(path)
    path.write_text(json.dumps(notebook, indent=1))
    return path


@dataclass
class PageServer:
    """A running server (Voila, :func:`serve`, or JupyterLab, :func:`serve_lab`): :attr:`url`
    is the page. :meth:`stop` (or leaving the ``with`` block) stops it and its kernels."""

    url: str
    process: subprocess.Popen
    directory: Path
    log_path: Path
    _temp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    def __enter__(self) -> PageServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        """The server's output so far (its log)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait(self) -> int:
        """Block until the server exits; its exit status."""
        return self.process.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM to its process group, then SIGKILL after ``timeout``
        seconds) and remove its temporary files. Idempotent."""
        if self.process.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None


def _start(name: str, argv: list[str], url: str, probe: str, directory: Path,
           temp: tempfile.TemporaryDirectory | None, env: dict, timeout: float) -> PageServer:
    """Start ``argv`` in its own session, logging to ``<directory>/<name>.log``, and wait
    until ``probe`` answers HTTP (any status)."""
    log_path = directory / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, cwd=directory, env=env, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = PageServer(url, process, directory, log_path, temp)
    try:
        _wait_until_answering(server, name, probe, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def serve(bench: str = "cnn", port: int | None = None, open_browser: bool = False, *,
          timeout: float = 60.0, cache: str | os.PathLike | None = None) -> PageServer:
    """Serve the inspector of benchmark ``bench`` with Voila on ``http://127.0.0.1:<port>/``.

    Arguments:
        bench: the benchmark shown first (``cnn``, ``resnet`` or ``vit``).
        port: the port (default: a free one, :func:`free_port`); one in use is an error.
        open_browser: open the page in the default web browser once the server answers.
        timeout: seconds to wait for the server to answer.
        cache: the project cache the page's kernel uses (default: this process's
            :func:`aquasurf_core.paths.cache_dir`).

    Returns a :class:`PageServer` (a context manager) once the server answers HTTP; the
    notebook itself runs when the page is opened. Raises ``ValueError`` for an unknown
    benchmark, ``OSError`` when the port is in use, ``RuntimeError`` (a first line saying
    what happened, then the end of Voila's log) when Voila exits or does not answer in
    time.
    """
    from aquasurf_core.bench.table import SHIPPED

    if bench not in SHIPPED:
        raise ValueError(f"unknown benchmark {bench!r}; choose one of {', '.join(SHIPPED)}")
    port = free_port(0 if port is None else int(port))
    temp = tempfile.TemporaryDirectory(prefix="aquasurf-inspector-")
    directory = Path(temp.name)
    jupyter = write_kernel_spec(directory)
    template = jupyter / "voila" / "templates" / "aquasurf"
    template.mkdir(parents=True)
    for name, text in VOILA_TEMPLATE.items():
        (template / name).write_text(text)
    cache = cache_dir() if cache is None else Path(cache).expanduser().resolve()
    notebook = write_notebook(directory / "inspector.ipynb",
                              [CELL.format(bench=bench, cache=str(cache))])
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(jupyter),
                                                        os.environ.get("JUPYTER_PATH")]))
    url = f"http://127.0.0.1:{port}/"
    server = _start("voila", [
        sys.executable, "-m", "voila", str(notebook), "--no-browser", f"--port={port}",
        "--Voila.ip=127.0.0.1", "--Voila.port_retries=0", "--show_tracebacks=True",
        "--theme=light", "--template=aquasurf"],
        url, url + "voila/static/", directory, temp, env, timeout)
    if open_browser:
        webbrowser.open(server.url)
    return server


#: JupyterLab settings of :func:`serve_lab`: no news or update checks (no request leaves the
#: machine, and no notification covers the page).
LAB_SETTINGS = {"@jupyterlab/apputils-extension/notification.jupyterlab-settings":
                {"fetchNews": "false", "checkForUpdates": False}}


def serve_lab(root: str | os.PathLike, open_path: str = "", *, port: int | None = None,
              timeout: float = 120.0) -> PageServer:
    """Serve JupyterLab on folder ``root`` at ``http://127.0.0.1:<port>/`` with a random
    token, and return a :class:`PageServer` whose :attr:`~PageServer.url` opens
    ``open_path`` (a path under ``root``, e.g. a notebook; ``""``: the file browser) with the
    token.

    The server has settings, workspaces and runtime files of its own (a temporary folder,
    removed by :meth:`PageServer.stop`), no news, update checks or extension manager queries
    (:data:`LAB_SETTINGS`; nothing leaves the machine), runs as root where it is started so, the
    kernel spec ``aquasurf-inspector`` (this interpreter; :func:`write_notebook` uses it), and
    shows its application to scripts as ``window.jupyterapp`` (to run a notebook's cells:
    :class:`~aquasurf_core.inspector.driver.LabNotebook`).
    Raises ``OSError`` when ``port`` is in use or ``root`` is not a folder, ``RuntimeError``
    (then the end of the server's log) when it exits or does not answer within ``timeout``
    seconds.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise OSError(f"{root} is not a folder")
    port = free_port(0 if port is None else int(port))
    token = secrets.token_hex(16)
    temp = tempfile.TemporaryDirectory(prefix="aquasurf-lab-")
    directory = Path(temp.name)
    jupyter = write_kernel_spec(directory)
    for name, value in LAB_SETTINGS.items():
        path = directory / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    env = dict(os.environ, PYTHONUNBUFFERED="1", JUPYTER_CONFIG_DIR=str(directory / "config"),
               JUPYTER_RUNTIME_DIR=str(directory / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(directory / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(directory / "workspaces"))
    env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(jupyter),
                                                        os.environ.get("JUPYTER_PATH")]))
    base = f"http://127.0.0.1:{port}/"
    page = urllib.parse.quote(f"lab/tree/{open_path}".rstrip("/"))
    return _start("jupyterlab", [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None", "--LabApp.expose_app_in_browser=True",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
        f"{base}{page}?token={token}", base + "api/status", directory, temp, env, timeout)


def _wait_until_answering(server: PageServer, name: str, probe: str, timeout: float) -> None:
    """Poll ``probe`` (a static or status URL: not the page, which would start a kernel)
    until it answers HTTP."""
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"{name} exited with status {server.process.returncode} before "
                               f"serving {server.url}:\n{server.log()[-3000:]}")
        try:
            with urllib.request.urlopen(probe, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # an HTTP answer, even 403/404: the server is up
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not answer at {server.url} within {timeout:.0f} s:"
                               f"\n{server.log()[-3000:]}")
        time.sleep(0.2)
