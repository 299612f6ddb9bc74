"""The site in a real browser: headless Debian chromium driven by Selenium, from file://.

Built from the committed results. Screenshots go to $DFERBENCH_SCREENSHOTS (default: a
pytest temporary folder); `make site-screenshots` copies site-index.png and site-row.png
from there into docs/images/ for the README. Where chromium is missing these tests are
deselected, and the header says so; under CI=true they fail instead.
"""

import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from dferbench.report.leaderboard import aggregate
from dferbench.report.site import build_site
from dferbench.run.results import UnitKey, iter_results

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
DESKTOP, PHONE = (1440, 1000), (390, 844)


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    build_site(REPO / "results", out)  # the committed site: every dataset, reported-only ones too
    return out


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = Path(os.environ.get("DFERBENCH_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser(chromium):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--hide-scrollbars", f"--window-size={DESKTOP[0]},{DESKTOP[1]}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))  # an explicit driver: nothing downloaded
    yield driver
    driver.quit()


def open_page(browser, path: Path, size=DESKTOP):
    browser.set_window_size(*size)
    browser.get(path.as_uri())
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"{path}: {errors}"


def screenshot(browser, path: Path, *, full: bool = False, height: int = 0) -> None:
    """The viewport, or the top ``height`` pixels, or with ``full`` the whole page (the window is resized)."""
    size = browser.get_window_size()
    if full or height:
        height = height or browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(size["width"], min(height, 8000))
    image = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    image.quantize(colors=128).save(path, optimize=True)  # a third of the size, for the README's copies
    browser.set_window_size(size["width"], size["height"])


def section(browser, dataset):
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, dataset)


def methods(table_section) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.find_element(By.CSS_SELECTOR, "th").text
            for row in table_section.find_elements(By.CSS_SELECTOR, "tbody.reproduced tr") if row.is_displayed()]


def header(table_section, label):
    from selenium.webdriver.common.by import By

    return next(th for th in table_section.find_elements(By.CSS_SELECTOR, "thead th") if th.text.startswith(label))


def expected_rows(dataset):
    return aggregate(list(iter_results(REPO / "results", dataset)))


def test_sort_by_uar_by_click_and_by_keyboard(browser, site_dir, shots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(browser, site_dir / "index.html")
    screenshot(browser, shots / "site-index.png")
    rows = expected_rows("synthetic")
    best_first = [r["run_name"] for r in rows]
    table = section(browser, "synthetic")
    assert methods(table) == best_first
    uar = header(table, "UAR")
    assert uar.get_attribute("aria-sort") == "descending"

    uar.find_element(By.TAG_NAME, "button").click()
    assert uar.get_attribute("aria-sort") == "ascending"
    worst_first = [r["run_name"] for r in sorted(rows, key=lambda r: r["uar"])]
    assert methods(table) == worst_first
    column = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")].index("UAR") + 1
    shown = [float(row.text.split(" ±")[0]) for row in table.find_elements(
        By.CSS_SELECTOR, f"tbody.reproduced tr > :nth-child({column})")]
    assert shown == sorted(shown) and len(shown) == len(rows)
    screenshot(browser, shots / "index-sorted-by-uar-ascending.png", full=True)

    button = uar.find_element(By.TAG_NAME, "button")
    browser.execute_script("arguments[0].focus()", button)
    assert browser.switch_to.active_element == button
    button.send_keys(Keys.ENTER)
    assert uar.get_attribute("aria-sort") == "descending" and methods(table) == best_first

    header(table, "WAR").find_element(By.TAG_NAME, "button").send_keys(Keys.ENTER)
    assert methods(table) == [r["run_name"] for r in sorted(rows, key=lambda r: -r["war"])]
    assert uar.get_attribute("aria-sort") is None
    assert methods(section(browser, "synthetic-11")) == [r["run_name"] for r in expected_rows("synthetic-11")]


def test_filter_by_family(browser, site_dir, shots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    open_page(browser, site_dir / "index.html")
    table = section(browser, "synthetic")
    Select(table.find_element(By.CSS_SELECTOR, "select[data-filter=family]")).select_by_visible_text("classifier-based")
    rows = expected_rows("synthetic")
    wanted = [r["run_name"] for r in rows if r["family"] == "classifier-based"]
    assert wanted and methods(table) == wanted
    assert table.find_element(By.CSS_SELECTOR, ".count").text == f"{len(wanted)} of {len(rows)} rows shown"
    assert len(methods(section(browser, "synthetic-11"))) == len(expected_rows("synthetic-11"))  # untouched
    Select(table.find_element(By.CSS_SELECTOR, "select[data-filter=temporal]")).select_by_visible_text("yes")
    assert methods(table) == [r["run_name"] for r in rows if r["family"] == "classifier-based" and r["temporal"]]
    screenshot(browser, shots / "index-filtered-classifier-temporal.png")


def test_a_row_page_shows_its_folds(browser, site_dir, shots):
    from selenium.webdriver.common.by import By

    open_page(browser, site_dir / "index.html")
    section(browser, "synthetic").find_element(By.LINK_TEXT, "dferclip").click()
    assert browser.current_url.endswith("/synthetic/dferclip--last_epoch.html")
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("dferclip")
    units = [json.loads(p.read_text()) for p in sorted((REPO / "results" / "synthetic" / "dferclip").glob("*.json"))]
    lines = browser.find_elements(By.CSS_SELECTOR, "#units tbody tr")
    cells = [[td.text for td in line.find_elements(By.TAG_NAME, "td")[:4]] for line in lines]
    assert cells == [[str(u["fold"]), str(u["seed"]), f"{u['uar']:.2f}", f"{u['war']:.2f}"]
                     for u in sorted(units, key=lambda u: (u["fold"], u["seed"]))]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#confusion tbody tr")) == len(units[0]["classes"])
    assert browser.find_elements(By.CSS_SELECTOR, "figure.curve svg polyline")
    screenshot(browser, shots / "site-row.png", height=1500)
    screenshot(browser, shots / "row-full.png", full=True)
    lines[0].find_element(By.LINK_TEXT, "result JSON").click()
    assert json.loads(browser.find_element(By.TAG_NAME, "body").text)["run_name"] == "dferclip"


@pytest.mark.parametrize("page", ["index.html", "synthetic-11/dferclip--last_epoch.html", "synthetic-11/index.html"])
def test_pages_fit_a_phone(browser, site_dir, shots, page):
    from selenium.webdriver.common.by import By

    open_page(browser, site_dir / page, PHONE)
    width, inner = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner, f"{page} is {width}px wide on a {inner}px screen"
    wide = browser.find_elements(By.CSS_SELECTOR, ".table-scroll")
    assert any(browser.execute_script("return arguments[0].scrollWidth > arguments[0].clientWidth", w) for w in wide)
    screenshot(browser, shots / f"phone-{page.replace('/', '-').replace('.html', '')}.png", full=True)


def test_reported_rows_are_never_sorted_into_reproduced_ones(browser, tmp_path, shots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    results = tmp_path / "results"
    for name, uar in (("low", 9.0), ("mid", 10.0), ("high", 90.0)):  # "9" sorts after "10" as text
        path = UnitKey(name, "dfew", 1, 1).path(results)
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({
            "schema": 1, "run_name": name, "model": name, "variant": "", "dataset": "dfew", "fold": 1, "seed": 1,
            "uar": uar, "war": uar, "selection": "last_epoch", "confusion": [[1, 0], [0, 1]], "classes": ["a", "b"],
            "n_test": 2,
            "config_hash": "h", "num_frames": 16, "image_size": 224, "normalize": "clip", "family": "text-based",
            "temporal": True, "precision": "fp32"}))
    build_site(results, tmp_path / "site")
    open_page(browser, tmp_path / "site" / "index.html")
    table = section(browser, "dfew")
    bodies = table.find_elements(By.TAG_NAME, "tbody")
    assert [b.get_attribute("class") for b in bodies] == ["reproduced", "reported"]
    reported = [r.find_element(By.TAG_NAME, "th").text for r in bodies[1].find_elements(By.CSS_SELECTOR, "tr.reported")]
    assert any(name.startswith("DFER-CLIP") for name in reported)
    for order in (["low", "mid", "high"], ["high", "mid", "low"]):  # each group keeps to its own body
        header(table, "UAR").find_element(By.TAG_NAME, "button").click()
        assert methods(table) == order
        assert {r.get_attribute("data-source") for r in bodies[0].find_elements(By.TAG_NAME, "tr")} == {"reproduced"}
        assert {r.get_attribute("data-source") for r in bodies[1].find_elements(By.CSS_SELECTOR, "tr:not(.group)")} \
            == {"reported"}
    ranks = {td.text for td in bodies[1].find_elements(By.CSS_SELECTOR, "tr.reported td:first-of-type")}
    assert ranks == {"-"}  # never ranked
    screenshot(browser, shots / "index-with-reported-rows.png", full=True)
    Select(table.find_element(By.CSS_SELECTOR, "select[data-filter=source]")).select_by_visible_text("reported")
    assert methods(table) == [] and bodies[1].find_element(By.CSS_SELECTOR, "tr.group").is_displayed()
    Select(table.find_element(By.CSS_SELECTOR, "select[data-filter=source]")).select_by_visible_text("reproduced")
    assert methods(table) == ["high", "mid", "low"]
    assert not bodies[1].find_element(By.CSS_SELECTOR, "tr.group").is_displayed()
