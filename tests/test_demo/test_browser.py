"""The page in a real browser: Debian's chromium, headless, driven by Selenium.

Skipped only when ``CI`` is unset and chromium is missing; with ``CI`` set it must run.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from demo_fixtures import make_composite_run, make_noisy_png, make_png, make_run, make_service

from robustret.demo.app import bind, create_app, make_server
from robustret.demo.service import DemoService

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
IN_CI = bool(os.environ.get("CI"))

if not IN_CI and (CHROMIUM is None or DRIVER is None):
    pytest.skip("chromium / chromium-driver not installed (apt-get install chromium "
                "chromium-driver); CI runs this test", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service() -> DemoService:
    return make_service()


@pytest.fixture(scope="module")
def png_bytes() -> bytes:
    return make_png()


@pytest.fixture(scope="module")
def server_url(service: DemoService) -> Iterator[str]:
    yield from _serve(service)


@pytest.fixture(scope="module")
def run_url() -> Iterator[str]:
    """The page of a tiny finished run that trained a blind restorer (``make_run``)."""
    from robustret.demo.run import load_run

    yield from _serve(load_run(make_run(), "cpu"))


@pytest.fixture(scope="module")
def composite_url() -> Iterator[str]:
    """The page of a tiny finished run of the composite estimated_hybrid
    (``make_composite_run``)."""
    from robustret.demo.run import load_run

    yield from _serve(load_run(make_composite_run(), "cpu"))


def _serve(service: DemoService) -> Iterator[str]:
    sock = bind("127.0.0.1", 0)
    server = make_server(create_app(service))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    assert CHROMIUM is not None and DRIVER is not None, (
        "CI needs chromium and chromium-driver (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _ready(driver: webdriver.Chrome) -> bool:
    return driver.find_element(By.ID, "results").get_attribute("data-state") == "ready"


def test_upload_shows_k_framed_results(server_url: str, browser: webdriver.Chrome,
                                       png_bytes: bytes, tmp_path: Path) -> None:
    image = tmp_path / "query.png"
    image.write_bytes(png_bytes)
    browser.get(server_url)
    wait = WebDriverWait(browser, 60)
    wait.until(_ready)  # the first query of the split, searched on load
    Select(browser.find_element(By.ID, "class_name")).select_by_visible_text("ring")
    k = browser.find_element(By.ID, "k")
    k.clear()
    k.send_keys("7")
    browser.execute_script("document.getElementById('results').dataset.state = 'stale';")
    browser.find_element(By.ID, "image").send_keys(str(image))
    wait.until(lambda d: _ready(d) and "uploaded" in d.find_element(By.ID, "summary").text)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".match")) == 21)
    for name in ("original", "degraded", "restored"):
        cells = browser.find_elements(By.CSS_SELECTOR, f'.row[data-row="{name}"] .match')
        assert len(cells) == 7
        for cell in cells:
            assert {"hit", "miss"} & set(cell.get_attribute("class").split())
    assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None


def test_bad_input_is_shown_on_the_page(server_url: str, browser: webdriver.Chrome) -> None:
    browser.get(server_url)
    wait = WebDriverWait(browser, 60)
    wait.until(_ready)
    box = browser.find_element(By.ID, "query_index")
    box.clear()
    box.send_keys("999")
    browser.find_element(By.ID, "severity").click()  # blur: the index box's change event
    wait.until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "query_index must be an integer" in browser.find_element(By.ID, "error").text
    box.clear()
    box.send_keys("1")
    browser.find_element(By.ID, "severity").click()
    wait.until(lambda d: not d.find_element(By.ID, "error").is_displayed() and _ready(d))


def test_an_upload_is_restored_by_the_run_s_learned_restorer(run_url: str,
                                                           browser: webdriver.Chrome,
                                                           png_bytes: bytes,
                                                           tmp_path: Path) -> None:
    image = tmp_path / "photo.png"
    image.write_bytes(png_bytes)
    browser.get(run_url)
    wait = WebDriverWait(browser, 60)
    wait.until(_ready)
    restorer = Select(browser.find_element(By.ID, "restorer"))
    labels = [option.text for option in restorer.options]
    assert "blind (blur+noise+resolution, blind)" in labels and "wiener (oracle)" in labels
    browser.execute_script("document.getElementById('results').dataset.state = 'stale';")
    browser.find_element(By.ID, "image").send_keys(str(image))
    wait.until(lambda d: _ready(d) and "uploaded" in d.find_element(By.ID, "summary").text)
    # an upload is searched as it is: no drawn parameters, so no oracle restorer
    assert Select(browser.find_element(By.ID, "degradation")).first_selected_option.text == "none"
    oracle = [o for o in restorer.options if o.text == "wiener (oracle)"][0]
    assert not oracle.is_enabled()
    browser.execute_script("document.getElementById('results').dataset.state = 'stale';")
    restorer.select_by_visible_text("blind (blur+noise+resolution, blind)")
    wait.until(_ready)
    title = browser.find_element(By.CSS_SELECTOR, '.row[data-row="restored"] h2').text
    assert title == "restored by blind (blur+noise+resolution, blind)"
    stats = browser.find_element(By.CSS_SELECTOR, '.row[data-row="degraded"] .stats').text
    assert stats.startswith("PSNR n/a (equal to the original)")  # searched as it is
    cells = browser.find_elements(By.CSS_SELECTOR, '.row[data-row="restored"] .match')
    assert cells and all("unknown" in cell.get_attribute("class").split() for cell in cells)
    assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None


def test_an_upload_is_restored_by_the_run_s_composite(composite_url: str,
                                                     browser: webdriver.Chrome,
                                                     tmp_path: Path) -> None:
    image = tmp_path / "noisy.png"
    image.write_bytes(make_noisy_png())
    browser.get(composite_url)
    wait = WebDriverWait(browser, 60)
    wait.until(_ready)
    restorer = Select(browser.find_element(By.ID, "restorer"))
    (label,) = [o.text for o in restorer.options if o.text.startswith("estimated_hybrid (")]
    assert label.endswith(", estimated)")
    browser.execute_script("document.getElementById('results').dataset.state = 'stale';")
    browser.find_element(By.ID, "image").send_keys(str(image))
    wait.until(lambda d: _ready(d) and "uploaded" in d.find_element(By.ID, "summary").text)
    browser.execute_script("document.getElementById('results').dataset.state = 'stale';")
    restorer.select_by_visible_text(label)  # it reads nothing drawn: offered under none
    wait.until(_ready)
    title = browser.find_element(By.CSS_SELECTOR, '.row[data-row="restored"] h2').text
    assert title == f"restored by {label}"
    stats = browser.find_element(By.CSS_SELECTOR, '.row[data-row="restored"] .stats').text
    assert not stats.startswith("PSNR n/a")  # the composite changed the noisy upload
    assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None
