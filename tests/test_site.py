"""The static site: built from result files only, deterministic, self-contained, escaped.

The browser checks (sorting, filtering, phone width) are in test_site_browser.py.
"""

import json
import re
import threading
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from dferbench.errors import DferbenchError
from dferbench.report.site import build, build_site, render_site, site
from dferbench.run.results import UnitKey

REPO = Path(__file__).resolve().parents[1]
ODD = "dferclip[text=file:/x/<b>.toml]"
CLASSES = ["a", "b", "c"]


def write_unit(root, run_name, fold, seed, uar, war, *, dataset="dfew", selection="last_epoch", history=True,
               under=""):
    """A unit result as the runner writes it (in a subfolder ``under`` of the dataset's), with its predictions."""
    path = UnitKey(run_name, dataset, fold, seed, selection).path(root)
    if under:
        path = root / dataset / under / path.relative_to(root / dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "schema": 1, "run_name": run_name, "model": run_name.split("[")[0], "variant": "", "dataset": dataset,
        "fold": fold, "seed": seed, "uar": uar, "war": war, "per_class_recall": [uar, war, 10.0 * fold],
        "confusion": [[3, 1, 0], [1, 2, 1], [0, 0, 4 + fold]], "classes": CLASSES, "n_train": 30, "n_test": 12 + fold,
        "selection": selection, "num_frames": 16, "image_size": 224, "normalize": "clip", "family": "text-based",
        "temporal": True, "config_hash": "h" + run_name, "config": {"model": {"lr": 0.01}, "train": {"epochs": 2}},
        "fit": {"epochs": 2, "selected_epoch": 2}, "history": [
            {"epoch": 1, "train_loss": 2.0 + fold, "test_war": war - 5},
            {"epoch": 2, "train_loss": 1.0, "test_war": war},
        ] if history else [],
        "versions": {"python": "3.11.7", "dferbench": "0.1.0"}, "git_commit": "abc123", "device": "cpu",
        "precision": "fp32", "wall_seconds": 12.5 + fold,
    }
    path.write_text(json.dumps(result))
    path.with_suffix(".predictions.csv").write_text("clip_id,label,prediction\nc1,0,0\n")
    return path


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    for fold, (uar, war) in enumerate([(50.0, 60.0), (54.0, 64.0)], start=1):
        write_unit(root, "m1", fold, 1, uar, war)
        write_unit(root, ODD, fold, 1, uar - 10, war - 10, history=False)
    write_unit(root, "m1", 1, 1, 70.0, 80.0, selection="best_on_test")
    write_unit(root, "m1[x]", 1, 1, 20.0, 30.0, under="sweep")  # its folder and page are named like m1-x's
    write_unit(root, "m1-x", 1, 1, 21.0, 31.0)
    return root


class Tags(HTMLParser):
    """Every tag's attributes, and every id, of one page."""

    def __init__(self):
        super().__init__()
        self.tags, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if "id" in attrs:
            self.ids.add(attrs["id"])


def parse(text: str) -> Tags:
    tags = Tags()
    tags.feed(text)
    return tags


def test_same_results_give_byte_identical_sites(results, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    written = build_site(results, first)
    build_site(results, second)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert sorted(str(first / f) for f in files) == written
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    assert not re.search(r"20\d\d-\d\d-\d\d", (first / "index.html").read_text())  # no build date anywhere


def test_check_names_missing_changed_and_leftover_files(results, tmp_path):
    out = tmp_path / "site"
    assert len(build_site(results, out, check=True)) > 5  # nothing built yet: everything is missing
    build_site(results, out)
    assert build_site(results, out, check=True) == []
    write_unit(results, "m1", 3, 1, 40.0, 50.0)
    stale = build_site(results, out, check=True)
    assert str(out / "index.html") in stale and str(out / "dfew" / "m1--last_epoch.html") in stale
    assert str(out / "dfew" / "units" / "m1" / "fold3-seed1.json") in stale
    for unit in (results / "dfew" / "m1-x").iterdir():
        unit.unlink()
    assert str(out / "dfew" / "m1-x--last_epoch-2.html") in build_site(results, out, check=True)  # left over
    build_site(results, out)
    pages = {p.name for p in (out / "dfew").glob("*.html")}
    assert pages == {"index.html", "m1--last_epoch.html", "m1--best_on_test.html", "m1-x--last_epoch.html",
                     "dferclip-text-file--x--b-.toml--last_epoch.html"}  # the removed run's page went with it
    assert not (out / "dfew" / "units" / "m1-x").exists() and (out / "dfew" / "units" / "sweep" / "m1-x").is_dir()
    assert build_site(results, out, check=True) == []


def test_every_link_and_source_resolves_inside_the_site(results, tmp_path):
    out = tmp_path / "site"
    build_site(results, out)
    pages = sorted(out.rglob("*.html"))
    checked = 0
    for page in pages:
        for tag, attrs in parse(page.read_text()).tags:
            for attr in ("href", "src"):
                url = attrs.get(attr)
                if url is None or url.startswith("data:"):
                    continue
                parts = urlsplit(url)
                assert not parts.scheme and not parts.netloc, f"{page}: {url} leaves the site (it must work offline)"
                target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
                assert target.is_file() and out.resolve() in target.parents, f"{page}: {url} points nowhere"
                if parts.fragment:
                    assert parts.fragment in parse(target.read_text()).ids, f"{page}: no #{parts.fragment} in {target}"
                checked += 1
    assert checked > 40


def test_odd_run_names_are_escaped_and_get_their_own_pages(results, tmp_path):
    files = render_site(results)
    index = files["index.html"].decode()
    assert "<b>" not in index and "dferclip[text=file:/x/&lt;b&gt;.toml]" in index
    page = "dfew/dferclip-text-file--x--b-.toml--last_epoch.html"
    assert "<b>" not in files[page].decode()
    # "m1[x]" and "m1-x" share a slug: each still gets a page of its own
    assert {"dfew/m1-x--last_epoch.html", "dfew/m1-x--last_epoch-2.html"} <= set(files)
    assert "<h1>m1-x " in files["dfew/m1-x--last_epoch.html"].decode()
    assert "<h1>m1[x] " in files["dfew/m1-x--last_epoch-2.html"].decode()


def test_reported_rows_are_a_separate_unranked_group(results):
    dfew = render_site(results)["index.html"].decode().split('id="dfew"')[1].split("</section>")[0]
    reproduced, reported = dfew.split('<tbody class="reproduced">')[1].split('<tbody class="reported">')
    assert "DFER-CLIP" not in reproduced and "m1" not in reported
    dfer = next(row for row in reported.split("<tr")[1:] if "DFER-CLIP" in row)
    cells = re.findall(r'<t[hd][^>]*data-sort="([^"]*)"', dfer)
    assert cells[0] == "" and "59.61" in dfer and "71.25" in dfer  # no rank, the paper's numbers
    assert 'data-source="reported"' in dfer and "DFER-CLIP paper" in dfer  # filterable, with its source


def test_rows_come_from_aggregate_and_their_extra_keys_become_columns(results, monkeypatch):
    plain = build.aggregate

    def with_statistics(units):
        rows = plain(units, with_stats=False)  # the statistics faked here, not computed
        for r in rows:
            r.update(uar_ci=(r["uar"] - 2.5, r["uar"] + 2.5), not_worse_than_best=r["uar"] > 45, rank_interval=(1, 3),
                     backbone="ViT-B/32")
        return rows

    monkeypatch.setattr(build, "aggregate", with_statistics)
    index = render_site(results)["index.html"].decode()
    headers = re.findall(r"<th scope=\"col\"[^>]*><button type=\"button\">([^<]*)</button>", index)
    # the Markdown leaderboard's order: each interval after its mean, the comparison with the best, the ranks
    assert headers[:13] == ["#", "method", "UAR", "UAR 95% CI", "WAR", "vs best (UAR)", "rank (95%)", "folds",
                            "seeds", "selection", "family", "temporal model", "backbone"]
    m1 = next(row for row in index.split("<tr")[1:] if ">m1</a>" in row and "last_epoch" in row)
    assert "52.00 ± 2.83" in m1 and "[49.50, 54.50]" in m1 and ">yes<" in m1 and ">1-3<" in m1 and "ViT-B/32" in m1


def test_a_dataset_with_only_reported_rows_gets_a_section_without_empty_columns(tmp_path):
    root = tmp_path / "results"
    write_unit(root, "m1", 1, 1, 50.0, 60.0, dataset="mafw")  # dfew and ferv39k: only reported numbers
    files = render_site(root)
    index = files["index.html"].decode()
    found = re.findall(r'<section class="dataset" id="([^"]+)"(.*?)</section>', index, re.S)
    assert [name for name, _ in found] == ["mafw", "dfew", "ferv39k"]  # what was produced here first
    sections = dict(found)
    dfew = sections["dfew"]
    headers = re.findall(r"<th scope=\"col\"[^>]*><button type=\"button\">([^<]*)</button>", dfew)
    assert headers == ["#", "method", "UAR", "WAR", "selection", "backbone", "modality"]
    uars = [float(u) for u in re.findall(r'<td data-sort="[^"]*">(\d+\.\d+)</td>\s*<td', dfew)][::2]
    assert len(uars) >= 3 and uars == sorted(uars, reverse=True)  # best first, as on the Markdown page
    assert "59.61" in dfew and "None reproduced here yet" in dfew and "-d dfew --set data.root=" in dfew
    assert "never ranked with the rows above" not in dfew and "never ranked with the rows above" in sections["mafw"]
    assert "None reproduced" not in sections["mafw"] and "input" in sections["mafw"]
    assert "-d dfew --set data.root=" in files["dfew/index.html"].decode()
    assert render_site(root, ["dfew"])["index.html"].count('<section class="dataset"'.encode()) == 1
    with pytest.raises(DferbenchError, match="unknown dataset"):
        render_site(root, ["dfw"])


def test_row_page_shows_units_recall_confusion_curves_config_and_provenance(results):
    page = render_site(results)["dfew/m1--last_epoch.html"].decode()
    units = page.split('id="units"')[1].split("</table>")[0]
    assert [re.findall(r"<td>([^<]*)</td>", line)[:4] for line in units.split("<tr>")[2:]] == [
        ["1", "1", "50.00", "60.00"], ["2", "1", "54.00", "64.00"]]
    assert 'href="units/m1/fold2-seed1.json"' in units and 'href="units/m1/fold2-seed1.predictions.csv"' in units
    recall = page.split('id="recall"')[1].split("</table>")[0]
    assert "<th scope=\"row\">c</th><td>15.00 ± 7.07</td><td>10.0</td><td>20.0</td>" in recall
    confusion = page.split('id="confusion"')[1].split("</table>")[0]
    assert re.findall(r"<td style=\"[^\"]*\">(\d+)<span", confusion) == ["6", "2", "0", "2", "4", "2", "0", "0", "11"]
    assert "67<span" not in confusion and '<span class="pct">75%</span>' in confusion  # 6 of 8 in row a
    assert page.count("<svg viewBox") == 2 and "training loss per epoch" in page and "test WAR (%) per epoch" in page
    assert "&#34;lr&#34;: 0.01" in page  # the config, escaped like every value
    assert "abc123" in page and "python 3.11.7 · dferbench 0.1.0" in page


def test_dataset_page_lists_classes_folds_and_clip_counts(results):
    page = render_site(results)["dfew/index.html"].decode()
    assert "<li>a</li><li>b</li><li>c</li>" in page
    folds = page.split('id="folds"')[1].split("</table>")[0]
    assert '<tr><th scope="row">2</th><td>30</td><td>14</td><td>4</td><td>4</td><td>6</td><td>2</td></tr>' in folds


def test_committed_results_build_a_site(tmp_path):
    files = render_site(REPO / "results")
    index = files["index.html"].decode()
    assert {"synthetic", "synthetic-11"} <= {m for m in re.findall(r'<section class="dataset" id="([^"]+)"', index)}
    page = files["synthetic/dferclip--last_epoch.html"].decode()
    units = sorted((REPO / "results" / "synthetic" / "dferclip").glob("fold*-seed*.json"))
    for path in units:
        unit = json.loads(path.read_text())
        assert f"<td>{unit['fold']}</td><td>{unit['seed']}</td><td>{unit['uar']:.2f}</td>" in page
        assert files[f"synthetic/units/dferclip/{path.name}"] == path.read_bytes()


def test_a_folder_that_is_no_site_is_never_overwritten(results, tmp_path):
    out = tmp_path / "docs"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DferbenchError, match="holds no dferbench site"):
        build_site(results, out)
    assert (out / "notes.txt").read_text() == "mine"


def test_site_refuses_bad_arguments(results, tmp_path):
    with pytest.raises(DferbenchError, match="does not exist"):
        site(tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(DferbenchError, match="only one of them"):
        site(results, tmp_path / "out", check=True, serve=True)


def test_preview_server_listens_on_localhost_only(results, tmp_path):
    out = tmp_path / "site"
    build_site(results, out)
    server = build.make_server(out, 0)
    host, port = server.server_address[:2]
    assert host == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10) as response:
            assert b"dferbench site" in response.read()
    finally:
        server.shutdown()
        server.server_close()


def test_heat_map_text_meets_wcag_aa_contrast_on_every_shade():
    from dferbench.report.site.charts import _luminance, heat_style

    def rgb(hex_colour):
        return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))

    for step in range(101):
        background, text = (part.split(":")[1] for part in heat_style(step / 100).split(";"))
        light, dark = sorted((_luminance(rgb(background)), _luminance(rgb(text))), reverse=True)
        assert (light + 0.05) / (dark + 0.05) >= 4.5, (step, background, text)
