"""Notebook 02's schedule explorer, live: JupyterLab in headless Chromium, driven by Playwright.

The test copies ``notebooks/`` to a temporary folder (the committed notebooks are never touched),
starts JupyterLab there (``DDPM_TEACH_SIZE=ci``, the repository on ``PYTHONPATH``), opens
``02_noise_schedules.ipynb``, clears its outputs and runs all cells, then moves the explorer's
``t`` slider with the keyboard and checks that the kernel answered: the caption names the new t
and the figure (an ``<img>`` in the plot area) was redrawn.

Needs Playwright (the Python package) and a Chromium on the machine (Debian: ``apt-get install
chromium``; never ``playwright install``). Without them the test is skipped, except under CI
(``CI`` set, as in ``.ci/run``), where a missing browser is a failure.

Debugging: the JupyterLab log (``jupyterlab.log``) and screenshots (``explorer.png``,
``page.png``, or ``failure.png``) are left in the test's ``tmp_path``.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "02_noise_schedules.ipynb"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

SERVER_TIMEOUT_S = 60        # JupyterLab answering /api/status
LOAD_TIMEOUT_S = 90          # page loaded, notebook open, kernel idle
RUN_TIMEOUT_S = 180          # run all cells until the explorer is on screen and the last cell has run
UPDATE_TIMEOUT_S = 30        # slider moved -> caption and figure redrawn
KEY_PRESSES = 3              # ArrowRight presses on the t slider (step 1): 3 redraws

CAPTION_RE = re.compile(r"t=(\d+) of T=(\d+)")

# JupyterLab user settings for the test server: no "news?" toast over the page, and every cell kept
# in the DOM (no notebook windowing), so the explorer's cell is there however far down it is.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}

# The open notebook's state, read through the application object (--LabApp.expose_app_in_browser).
JS_NOTEBOOK_READY = """() => {
  const app = window.jupyterapp;
  const panel = app && app.shell && app.shell.currentWidget;
  if (!panel || !panel.sessionContext || !panel.content || !panel.context || !panel.context.isReady) return false;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle' && kernel.connectionStatus === 'connected'
         && panel.content.widgets.length > 0;
}"""
JS_KERNEL_IDLE = """() => {
  const session = window.jupyterapp.shell.currentWidget.sessionContext.session;
  return !!session && !!session.kernel && session.kernel.status === 'idle';
}"""
JS_RUN_STATUS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = panel.content.widgets.filter(cell => cell.model.type === 'code');
  const errors = [];
  for (const cell of cells) {
    for (const output of cell.model.outputs.toJSON()) {
      if (output.output_type === 'error') errors.push(`${output.ename}: ${output.evalue}`);
    }
  }
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return {executed: cells.filter(cell => cell.model.executionCount !== null).length, total: cells.length,
          errors: errors, kernel: kernel ? kernel.status : 'none'};
}"""


def _is_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _missing(reason: str):
    """Skip on a developer machine; fail under CI, where the browser test must run."""
    if _is_ci():
        pytest.fail(f"{reason} (CI is set, so the browser test must run; see scripts/setup.sh)")
    pytest.skip(reason)


def _chromium() -> str:
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    _missing("Chromium not found (apt-get install chromium)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _api(base_url: str, token: str, path: str, method: str = "GET", timeout: float = 5.0):
    request = urllib.request.Request(f"{base_url}{path}", method=method,
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else None


def _log_tail(log_path: Path, chars: int = 3000) -> str:
    try:
        return log_path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def _stop_server(proc: subprocess.Popen, base_url: str, token: str) -> None:
    """Shut the kernels down, then the server's process group; kill whatever is left."""
    try:  # kernels run in their own sessions (jupyter_client), so stop them explicitly first
        for kernel in _api(base_url, token, "/api/kernels"):
            _api(base_url, token, f"/api/kernels/{kernel['id']}", method="DELETE", timeout=10)
    except Exception:  # noqa: BLE001 - best effort; the server may already be gone
        pass
    try:
        import psutil
        children = psutil.Process(proc.pid).children(recursive=True)
    except Exception:  # noqa: BLE001 - psutil missing or the server already gone
        children = []
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
    for child in children:  # anything the server started that outlived it (e.g. a kernel)
        try:
            if child.is_running():
                child.kill()
        except Exception:  # noqa: BLE001
            pass


@pytest.fixture
def jupyter_lab(tmp_path):
    """A JupyterLab server on a free local port, serving a copy of notebooks/. Yields (url, token)."""
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        _missing("JupyterLab is not installed (pip install -e '.[dev]')")

    root = tmp_path / "notebooks"
    shutil.copytree(REPO / "notebooks", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    config_dir = tmp_path / "jupyter_config"           # no user config, settings or workspaces leak in
    for name, settings in LAB_SETTINGS.items():
        path = config_dir / "lab" / "user-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))

    port, token = _free_port(), secrets.token_hex(16)
    base_url = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.update(DDPM_TEACH_SIZE="ci", JUPYTER_CONFIG_DIR=str(config_dir),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter_runtime"),
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p))
    env.setdefault("OMP_NUM_THREADS", "1")             # the kernel inherits this
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--port-retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               "--allow-root", "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log_path = tmp_path / "jupyterlab.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {proc.returncode}:\n{_log_tail(log_path)}")
            try:
                _api(base_url, token, "/api/status", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, OSError, ValueError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within {SERVER_TIMEOUT_S} s:\n{_log_tail(log_path)}")
                time.sleep(0.5)
        yield base_url, token
    finally:
        _stop_server(proc, base_url, token)


def _wait_for_run(page, deadline: float) -> dict:
    """Poll the notebook until every code cell has run and the kernel is idle; fail on an error output."""
    while True:
        status = page.evaluate(JS_RUN_STATUS)
        if status["errors"]:
            pytest.fail(f"notebook raised: {status['errors']}")
        if status["executed"] == status["total"] and status["kernel"] == "idle":
            return status
        if time.monotonic() > deadline:
            pytest.fail(f"notebook did not finish within {RUN_TIMEOUT_S} s: {status}")
        time.sleep(0.5)


@pytest.fixture
def browser_tools():
    """(sync_playwright, path to Chromium): checked before any server is started."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install playwright; the browser comes from apt)")
    return sync_playwright, _chromium()


def test_schedule_explorer_redraws_when_t_moves(browser_tools, jupyter_lab, tmp_path):
    sync_playwright, chromium = browser_tools
    base_url, token = jupyter_lab

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(UPDATE_TIMEOUT_S * 1000)
        try:
            # 1. open the notebook and wait for an idle kernel
            page.goto(f"{base_url}/lab/tree/{NOTEBOOK}?token={token}", wait_until="domcontentloaded",
                      timeout=LOAD_TIMEOUT_S * 1000)
            page.wait_for_function("() => !!window.jupyterapp", timeout=LOAD_TIMEOUT_S * 1000)
            page.evaluate("async () => { await window.jupyterapp.started; await window.jupyterapp.restored; }")
            page.wait_for_function(JS_NOTEBOOK_READY, timeout=LOAD_TIMEOUT_S * 1000, polling=250)

            # 2. clear the committed outputs (so nothing below is stale), then run all cells
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            deadline = time.monotonic() + RUN_TIMEOUT_S
            caption = page.locator(".ddpm-explorer-caption")
            plot_img = page.locator(".ddpm-explorer-plot img")
            caption.wait_for(state="visible", timeout=RUN_TIMEOUT_S * 1000)
            plot_img.first.wait_for(state="attached", timeout=max(1.0, deadline - time.monotonic()) * 1000)
            _wait_for_run(page, deadline)          # the cells after the explorer are done too

            explorer = page.locator(".ddpm-explorer")
            explorer.scroll_into_view_if_needed()
            before_caption = caption.inner_text()
            before_src = plot_img.first.get_attribute("src")
            match = CAPTION_RE.search(before_caption)
            assert match, f"unexpected caption: {before_caption!r}"
            before_t, T = int(match.group(1)), int(match.group(2))
            assert before_src, "the plot has no image"

            # 3. move t: focus the slider's handle and press ArrowRight (each press is a 'change',
            #    which a continuous_update=False slider sends to the kernel)
            handle = page.locator(".ddpm-explorer-t .noUi-handle")
            handle.focus()
            for _ in range(KEY_PRESSES):
                page.keyboard.press("ArrowRight")
            readout = page.locator(".ddpm-explorer-t .widget-readout")
            new_t = before_t + KEY_PRESSES
            page.wait_for_function("([el, v]) => el.textContent.trim() === String(v)",
                                   arg=[readout.element_handle(), new_t])

            # 4. the kernel redraws: the caption names the new t, the figure is a new image
            page.wait_for_function(
                "([el, text]) => el.textContent.includes(text)",
                arg=[caption.element_handle(), f"t={new_t} of T={T}"])
            # each press is one redraw, and the caption is written before the figure: once the caption
            # names the last t, an idle kernel means the last figure has been sent too
            page.wait_for_function(JS_KERNEL_IDLE, polling=100)
            page.wait_for_function(
                "([el, src]) => { const img = el.querySelector('img'); return !!img && img.src !== src; }",
                arg=[page.locator(".ddpm-explorer-plot").element_handle(), before_src])
            after_caption = caption.inner_text()
            after_src = plot_img.first.get_attribute("src")
            explorer.screenshot(path=str(tmp_path / "explorer.png"))
            page.screenshot(path=str(tmp_path / "page.png"))
        except BaseException:
            try:
                page.screenshot(path=str(tmp_path / "failure.png"))
                print(f"screenshot of the failure: {tmp_path / 'failure.png'}")
            except Exception:  # noqa: BLE001 - the page may be gone
                pass
            raise
        finally:
            browser.close()

    assert after_caption != before_caption
    assert f"t={new_t} of T={T}" in after_caption, after_caption
    assert f"t={before_t} of" not in after_caption, after_caption
    assert after_src and after_src != before_src
    assert after_src.startswith("data:image/png"), after_src[:40]
