"""The visualisation notebook in a real browser: JupyterLab + headless Chromium.

The test starts JupyterLab on 127.0.0.1 (random port, random token) over a
temporary copy of ``notebooks/07_visualising_diffusion.ipynb`` (the stored
notebook is never opened for writing, so it keeps no outputs), opens it in
Debian's Chromium driven by Playwright, runs all cells from the Run menu and
checks that:

- no cell shows an error, and every code cell ran;
- the ipywidgets explorers render (no "Error displaying widget" or
  "Loading widget..." left);
- moving an explorer's frame slider (arrow keys on the slider handle) changes
  its image.

A screenshot of the page goes to the test's temporary folder, and also to
``figures/07_browser.png`` with ``LGD_UPDATE_SCREENSHOT=1`` (a plain test run
leaves the checkout unchanged).

Chromium comes from apt (``apt-get install chromium``), installed by the test
itself when missing and when it runs as root; Playwright's own browser
download is not used. In CI (``CI=true``) a Chromium that cannot be installed
fails the test; elsewhere the test is skipped with the reason.

``LGD_BROWSER_NOTEBOOK=path/to/other.ipynb`` points the same checks at
another notebook (its screenshot then only goes to the temporary folder).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "07_visualising_diffusion.ipynb"
SCREENSHOT = ROOT / "figures" / "07_browser.png"

APT_TIMEOUT = 900          # seconds for apt-get update + install
SERVER_TIMEOUT = 120       # seconds for JupyterLab to answer /api/status
RUN_ALL_TIMEOUT = 900      # seconds for "Run All Cells" (07 trains a small model on the CPU)
SLIDER_TIMEOUT = 120       # seconds for the kernel to redraw an explorer's image
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-dev-shm-usage"]
WIDGET_ERRORS = ("Error displaying widget", "Loading widget...", "Failed to load model class")

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(1800)]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def cannot(reason: str):
    """Fail in CI, skip elsewhere."""
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def find_chromium() -> str | None:
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def install_chromium() -> tuple[bool, str]:
    """``apt-get update && apt-get install chromium``; returns (ok, apt's output)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    output = []
    deadline = time.monotonic() + APT_TIMEOUT
    for command in (["apt-get", *lock, "update"],
                    ["apt-get", *lock, "install", "-y", "--no-install-recommends", "chromium"]):
        try:
            done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True,
                                  timeout=max(1.0, deadline - time.monotonic()))
        except FileNotFoundError:
            return False, "apt-get not found (not a Debian-like system)"
        except subprocess.TimeoutExpired as error:
            out = error.stdout.decode(errors="replace") if isinstance(error.stdout, bytes) else (error.stdout or "")
            return False, "\n".join(output + [out, f"{' '.join(command)}: no result after {APT_TIMEOUT} s"])
        output.append(f"$ {' '.join(command)}\n{done.stdout}")
        if done.returncode != 0:
            return False, "\n".join(output + [f"exit status {done.returncode}"])
    return True, "\n".join(output)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of Debian's Chromium, installed with apt if missing (root only)."""
    path = find_chromium()
    if path is None:
        if os.geteuid() != 0:
            cannot("chromium is not installed and installing it needs root: "
                   "apt-get install --no-install-recommends chromium")
        ok, output = install_chromium()
        path = find_chromium()
        if not ok or path is None:
            cannot(f"could not install chromium with apt-get:\n{output[-6000:]}")
    return path


@pytest.fixture(scope="session")
def sync_playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        cannot(f"playwright is not installed ({error}); pip install -e '.[test]'")
    return sync_playwright


@pytest.fixture(scope="session")
def notebook() -> Path:
    """The notebook under test (skips before anything is installed or started when it is missing)."""
    override = os.environ.get("LGD_BROWSER_NOTEBOOK")
    path = Path(override).resolve() if override else NOTEBOOK
    if not path.is_file():
        name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        pytest.skip(f"{name} does not exist yet: the browser test opens the visualisation notebook "
                    f"(generated from notebooks/src/{path.stem}.py)")
    return path


def stage(notebook: Path, folder: Path) -> Path:
    """A working copy of the repository layout in ``folder``: the notebook copied, everything else linked.

    The kernel runs in ``folder/notebooks`` like in the repository (relative
    paths and ``repository_root()`` still work), but whatever the browser
    saves lands in the copy, never in the stored notebook.
    """
    (folder / "notebooks").mkdir(parents=True)
    for entry in ROOT.iterdir():
        if entry.name not in {".git", ".venv", "notebooks", ".pytest_cache"}:
            (folder / entry.name).symlink_to(entry)
    for entry in (ROOT / "notebooks").iterdir():
        if entry.name != notebook.name and entry.name != ".ipynb_checkpoints":
            (folder / "notebooks" / entry.name).symlink_to(entry)
    copy = folder / "notebooks" / notebook.name
    shutil.copyfile(notebook, copy)
    return copy


def lab_settings(folder: Path) -> Path:
    """User settings for a quiet, deterministic JupyterLab: every cell in the DOM, no autosave, no news."""
    settings = {
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }
    for plugin, values in settings.items():
        package, name = plugin.rsplit("/", 1)
        path = folder / package / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return folder


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


class Lab:
    """A running JupyterLab: its address and token, served folder, log file and process."""

    def __init__(self, base: str, token: str, root_dir: Path, log: Path, process: subprocess.Popen):
        self.base, self.token, self.root_dir, self.log, self.process = base, token, root_dir, log, process

    def url(self, path: str) -> str:
        return f"{self.base}{path}{'&' if '?' in path else '?'}token={self.token}"

    def kernels(self) -> list:
        return get_json(self.url("/api/kernels"))

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@pytest.fixture
def jupyter_lab(tmp_path, free_port):
    """JupyterLab from this venv on 127.0.0.1 over ``tmp_path/lab``; stopped (with its kernels) afterwards."""
    root_dir = tmp_path / "lab"
    root_dir.mkdir()
    jupyter = Path(sys.executable).parent / "jupyter"
    if not jupyter.exists():
        pytest.fail(f"{jupyter} not found: JupyterLab is not installed in this environment", pytrace=False)
    token = secrets.token_hex(24)
    port = free_port
    figures = tmp_path / "figures"
    env = {**os.environ, "LGD_PROFILE": "cpu", "LGD_FIGURES_DIR": str(figures),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
           "IPYTHONDIR": str(tmp_path / "ipython")}
    env.pop("MPLBACKEND", None)  # the kernel's inline backend, as a user would see it
    command = [str(jupyter), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root_dir}", f"--LabApp.user_settings_dir={lab_settings(tmp_path / 'settings')}",
               f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = tmp_path / "jupyter-lab.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=root_dir, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    lab = Lab(f"http://127.0.0.1:{port}", token, root_dir, log, process)
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited with status {process.returncode}:\n{lab.log_tail()}", pytrace=False)
            try:
                get_json(lab.url("/api/status"))
                break
            except (urllib.error.URLError, OSError, ValueError):
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer within {SERVER_TIMEOUT} s:\n{lab.log_tail()}",
                                pytrace=False)
                time.sleep(0.5)
        yield lab
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the server (it shuts its kernels down), then SIGKILL its process group if anything is left."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if process.poll() is None:
        process.wait(timeout=10)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


PROMPTS_JS = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell')).map(
    cell => (cell.querySelector('.jp-InputPrompt') || {}).textContent || '')"""


def wait_until_run(page, lab: Lab, timeout: float) -> list[str]:
    """Wait until no code cell is queued or running ("[*]") and the kernel is idle, twice in a row."""
    deadline = time.monotonic() + timeout
    calm = 0
    prompts: list[str] = []
    while calm < 2:
        if time.monotonic() > deadline:
            raise AssertionError(f"the notebook did not finish within {timeout:.0f} s; prompts: {prompts}")
        page.wait_for_timeout(1000)
        prompts = [p.strip() for p in page.evaluate(PROMPTS_JS)]
        states = [k.get("execution_state") for k in lab.kernels()]
        if states and all(state == "idle" for state in states) and not any("*" in p for p in prompts):
            calm += 1
        else:
            calm = 0
        if page.locator(".jp-Dialog").count():
            raise AssertionError(f"a dialog appeared: {page.locator('.jp-Dialog').first.inner_text()!r}")
    return prompts


STDERR = '.jp-Notebook .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^-{20,}\n\w+(Error|Exception)", re.MULTILINE)


def saved_outputs(page, copy: Path, timeout: float = 60) -> list:
    """Save the working copy from the browser (File > Save Notebook); its code cells' outputs as (cell, output)."""
    import nbformat

    before = copy.stat().st_mtime_ns
    page.locator("#jp-MainMenu .lm-MenuBar-item", has_text=re.compile(r"^File$")).click()
    page.locator(".lm-Menu-item").filter(
        has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Save( Notebook)?$"))).click()
    deadline = time.monotonic() + timeout
    while copy.stat().st_mtime_ns == before:
        assert time.monotonic() < deadline, f"the browser did not save {copy.name} within {timeout:.0f} s"
        page.wait_for_timeout(250)
    page.wait_for_timeout(500)
    nb = nbformat.read(copy, as_version=4)
    return [(index, output) for index, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for output in cell.outputs]


def frame_explorer(page):
    """The first explorer (a widget box holding a "frame" slider and an image): (box, slider, image)."""
    frame_label = page.locator(".widget-label", has_text=re.compile(r"^\s*frame\s*$"))
    sliders = page.locator(".jp-Notebook .widget-slider").filter(has=frame_label)
    assert sliders.count() > 0, "no frame slider was rendered"
    for index in range(sliders.count()):
        slider = sliders.nth(index)
        box = slider.locator("xpath=ancestor::div[contains(@class, 'widget-box')][.//img][1]")
        if box.count():
            return box, slider, box.locator("img").first
    raise AssertionError("no widget box holds both a frame slider and an image")


def test_visualisation_notebook_runs_and_its_explorers_respond_in_chromium(notebook, chromium, sync_playwright,
                                                                          jupyter_lab, tmp_path):
    stored = digest(notebook)
    copy = stage(notebook, jupyter_lab.root_dir)
    relative = copy.relative_to(jupyter_lab.root_dir).as_posix()
    console_errors: list[str] = []
    shots = [tmp_path / f"{notebook.stem}_browser.png"]
    if notebook == NOTEBOOK and os.environ.get("LGD_UPDATE_SCREENSHOT") == "1":
        shots.append(SCREENSHOT)                # a test run leaves the checkout unchanged unless asked
    started = time.monotonic()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console_errors.append(str(e)))
            try:
                page.goto(jupyter_lab.url(f"/lab/tree/{relative}"), wait_until="domcontentloaded", timeout=120_000)
                page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(timeout=120_000)
                # a kernel must be up before "Run All Cells" is useful
                deadline = time.monotonic() + 120
                while not jupyter_lab.kernels() or jupyter_lab.kernels()[0].get("execution_state") != "idle":
                    assert time.monotonic() < deadline, "the notebook's kernel did not start within 120 s"
                    page.wait_for_timeout(500)

                # more room for the notebook: fold the file browser away
                page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").first.click()
                page.locator("#jp-MainMenu .lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
                page.locator(".lm-Menu-item").filter(
                    has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$"))).click()
                prompts = wait_until_run(page, jupyter_lab, RUN_ALL_TIMEOUT)
                run_seconds = time.monotonic() - started

                # JupyterLab 4 renders an error output with the stderr renderer (its traceback), so the
                # page is checked for tracebacks and the saved working copy for "error" outputs
                shown = [text for text in page.locator(STDERR).all_inner_texts() if TRACEBACK.search(text)]
                assert not shown, "a cell shows an error:\n" + "\n---\n".join(t[-2000:] for t in shown)
                errors = [f"cell {index}: {output.get('ename')}: {output.get('evalue')}"
                          for index, output in saved_outputs(page, copy) if output.output_type == "error"]
                assert not errors, f"error outputs: {errors}"
                not_run = [i for i, p in enumerate(prompts) if not re.search(r"\d", p)]
                assert prompts and not not_run, f"code cells {not_run} did not run (prompts {prompts})"

                assert page.locator(".jp-Notebook .jupyter-widgets").count() > 0, "no widget view was rendered"
                assert page.locator(".jp-Notebook .widget-slider").count() > 0, "no slider was rendered"
                text = page.locator(".jp-Notebook").inner_text()
                shown = [message for message in WIDGET_ERRORS if message in text]
                assert not shown, f"widget views failed: {shown}; browser console: {console_errors[-10:]}"

                box, slider, image = frame_explorer(page)
                image.scroll_into_view_if_needed()
                image.wait_for(state="visible", timeout=30_000)
                readout = slider.locator(".widget-readout")
                before_value = readout.inner_text().strip()
                before_src = image.get_attribute("src")
                before_pixels = image.screenshot()
                handle = slider.locator(".noUi-handle").first
                at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
                handle.focus()
                for _ in range(2):
                    page.keyboard.press("ArrowLeft" if at_max else "ArrowRight")
                assert readout.inner_text().strip() != before_value, "the arrow keys did not move the frame slider"
                deadline = time.monotonic() + SLIDER_TIMEOUT
                while image.get_attribute("src") == before_src:
                    assert time.monotonic() < deadline, \
                        f"the image did not change within {SLIDER_TIMEOUT} s after the frame slider moved"
                    page.wait_for_timeout(250)
                page.wait_for_timeout(500)
                assert image.screenshot() != before_pixels, "the image's source changed but its pixels did not"

                page.mouse.move(0, 0)
                box.evaluate("element => element.scrollIntoView({block: 'start'})")
                page.wait_for_timeout(500)
                for shot in shots:
                    shot.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(shot), full_page=True)
            except BaseException:
                try:
                    page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                except Exception:  # noqa: BLE001 - the page may be gone; the original error matters
                    pass
                print(f"screenshot of the failure: {tmp_path / 'failure.png'}\n"
                      f"jupyter lab log:\n{jupyter_lab.log_tail()}\nbrowser console: {console_errors[-20:]}")
                raise
        finally:
            browser.close()

    print(f"{notebook.name}: ran all cells in {run_seconds:.0f} s; screenshots: {', '.join(map(str, shots))}")
    assert digest(notebook) == stored, f"{notebook.name} was modified while the browser had it open"


# ---------------------------------------------------------------------------------------------- the book

BOOK_SCREENSHOT = ROOT / "figures" / "book.png"


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """Both editions of the book, built offline with warnings as errors, from a fresh run of notebook 2 (its
    figure and its equations) and the stored copies of the others (``lgd book --allow-unexecuted``)."""
    from lgd_tutorial.book import build_book
    from lgd_tutorial.notebooks import run_notebook

    folder = tmp_path_factory.mktemp("book")
    run = run_notebook(ROOT / "notebooks" / "02_building_blocks.ipynb", out_dir=folder / "executed", timeout=600,
                       env={"LGD_FIGURES_DIR": str(folder / "figures"), "LGD_WORK_DIR": str(folder / "work"),
                            "LGD_PROFILE": "cpu", "MPLBACKEND": "module://matplotlib_inline.backend_inline"})
    assert run.ok, run.error
    start = time.perf_counter()
    built = build_book(folder / "out", executed=folder / "executed", allow_unexecuted=True, log=print)
    print(f"both editions built in {time.perf_counter() - start:.1f} s")
    return built


class Site:
    """A built edition served on 127.0.0.1 (a thread of http.server), stopped afterwards."""

    def __init__(self, folder: Path):
        import functools
        import http.server
        import threading

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

        handler = functools.partial(Quiet, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def only(base: str, outside: list):
    """A route handler that lets requests to ``base`` through and blocks (and records) every other one."""
    def handle(route, request=None):
        if route.request.url.startswith(base):
            route.continue_()
        else:                                                   # the network is off for everything else
            outside.append(route.request.url)
            route.abort()
    return handle


def test_the_book_loads_shows_figures_typesets_math_and_searches_with_the_network_off(book, chromium,
                                                                                      sync_playwright, tmp_path):
    shots = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            for edition, html in book.items():
                with Site(html) as site:
                    context = browser.new_context(viewport={"width": 1280, "height": 900})
                    outside = []

                    context.route("**/*", only(site.base, outside))
                    page = context.new_page()
                    page.goto(site.base + "index.html")
                    assert "LGD networks" in page.title() and f"{edition} edition" in page.content()
                    assert page.locator("nav a", has_text="Building blocks").count() >= 1

                    page.goto(site.base + "notebooks/02_building_blocks.html")
                    page.wait_for_load_state("networkidle")
                    drawn = page.eval_on_selector_all(
                        "img", "imgs => imgs.filter(i => i.complete && i.naturalWidth > 100).length")
                    assert drawn >= 1, "no figure is shown on the executed notebook's page"
                    page.wait_for_selector("mjx-container", timeout=30_000)      # MathJax typeset the equations
                    assert page.locator("mjx-container").count() >= 2
                    text = page.inner_text("main")
                    if edition == "student":
                        assert "NotImplementedError" in text and "BEGIN SOLUTION" not in text
                        assert page.locator("a", has_text="download 02_building_blocks.ipynb").count() == 1
                        shot = tmp_path / "book_student.png"
                        page.screenshot(path=str(shot))
                        shots.append(shot)
                    else:
                        assert page.locator("details.hide-input, details.above-input").count() >= 1, \
                            "the instructor edition folds no solution"

                    page.goto(site.base + "search.html?q=diffusion")
                    page.wait_for_selector("#search-results li", timeout=30_000)
                    assert page.locator("#search-results li").count() >= 3
                    context.close()
                    assert outside == [], f"the {edition} edition asked for {outside[:5]}"
        finally:
            browser.close()
    if os.environ.get("LGD_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shots[0], BOOK_SCREENSHOT)
    print(f"screenshot: {shots[0]}")


def test_each_edition_treats_the_solutions_as_it_should_and_a_missing_run_is_named(tmp_path):
    """Without a browser: the student page stubs every solution and drops its output; the instructor page keeps
    it and folds it; building from a folder without executed copies names what is missing."""
    import nbformat

    from lgd_tutorial.book import assemble, instructor_page, student_page

    nb = nbformat.read(ROOT / "notebooks" / "02_building_blocks.ipynb", as_version=4)
    solutions = [i for i, c in enumerate(nb.cells) if "### BEGIN SOLUTION" in c.source]
    assert solutions
    for i in solutions:
        nb.cells[i].outputs = [nbformat.v4.new_output("stream", text="the answer's output\n")]
    student, instructor = student_page(nb, "02_building_blocks"), instructor_page(nb)
    assert not any("### BEGIN SOLUTION" in c.source for c in student.cells)
    assert "the answer's output" not in json.dumps(student)
    folded = [c for c in instructor.cells if "hide-input" in c.metadata.get("tags", [])]
    assert len(folded) == len(solutions) and all(c.outputs for c in folded)
    with pytest.raises(FileNotFoundError, match="02_building_blocks.ipynb"):
        assemble("student", tmp_path / "src", ROOT, tmp_path / "nothing_ran")
