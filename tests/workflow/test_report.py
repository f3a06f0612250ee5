"""The analyst's report: every output marked for it is embedded in its section with a caption that
carries the settings actually used, and the page works in a real browser.

Snakemake 9 writes one self-contained HTML file: results, categories and the workflow description
are JSON literals in ``<script id="results">var results = {...};</script>`` and its siblings, and
each result's ``data_uri`` is a base64 ``data:`` URL of the file.
"""

from __future__ import annotations

import ast
import base64
import html
import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from clonetrack.io.sheet import read_sample_sheet
from runner import copy_repo, snakemake

pytestmark = pytest.mark.workflow

SECTIONS = (
    "0. Answer",
    "1. QC",
    "2. Integration",
    "3. Clusters and cell types",
    "4. Differential expression",
    "5. Clones",
)
TOY_SAMPLES = [
    f"{p}_{t}" for p in ("P1", "P2", "P3") for t in ("diagnosis", "on_treatment", "relapse")
]
TOY_PATIENTS = ["P1", "P2", "P3"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# ----------------------------------------------------------------------------------------------
# helpers


name_ids = {"workflow_desc": "workflow-desc"}


def embedded(html: str, name: str):
    """The JSON value assigned to ``var <name>`` in the report's ``<script id=...>`` block."""
    script = re.search(rf'<script id="{name_ids.get(name, name)}">\s*var {name} = ', html)
    assert script, f"the report has no <script> defining {name}"
    start = script.end()
    value, _ = json.JSONDecoder().raw_decode(html, start)
    return value


def report_calls(rules_dir: Path) -> list[dict]:
    """Every ``report(...)`` output declared in the rules, as literal arguments.

    The call is cut out of the rule file at the shortest closing parenthesis that makes it a valid
    Python expression, then read with :mod:`ast` (paths, caption, category, subcategory, labels).
    """
    calls = []
    for smk in sorted(rules_dir.glob("*.smk")):
        text = smk.read_text()
        for match in re.finditer(r"\breport\(", text):
            start = match.start()
            end = text.index(")", match.end())
            while True:
                try:
                    node = ast.parse(text[start : end + 1].strip(), mode="eval").body
                    break
                except SyntaxError:
                    end = text.index(")", end + 1)
            assert isinstance(node, ast.Call)
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
            calls.append(
                {
                    "rules_file": smk.name,
                    "path": ast.literal_eval(node.args[0]),
                    "caption": kwargs.get("caption"),
                    "category": kwargs.get("category"),
                    "subcategory": kwargs.get("subcategory"),
                    "labels": kwargs.get("labels", {}),
                }
            )
    return calls


def expand(template: str, wildcards: dict) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: wildcards[m.group(1)], template)


def expected_results(workdir: Path) -> dict[str, dict]:
    """Report outputs the rules promise for the sheet of ``workdir``, keyed by path."""
    sheet = read_sample_sheet(workdir / "resources/toy/samples.tsv")
    values = {"sample": list(sheet.index), "patient": sorted(sheet["patient_id"].unique())}
    expected = {}
    for call in report_calls(workdir / "workflow/rules"):
        names = set(re.findall(r"\{(\w+)\}", call["path"]))
        assert len(names) <= 1, call
        combos = [{}] if not names else [{n: v} for n in names for v in values[n]]
        for wc in combos:
            path = expand(call["path"], wc)
            expected[path] = {
                "category": call["category"],
                "subcategory": expand(call["subcategory"], wc) if call["subcategory"] else "Other",
                "labels": {k: expand(v, wc) for k, v in call["labels"].items()},
                "caption_file": call["caption"],
            }
    return expected


def strip_tags(markup: str) -> str:
    """Caption HTML as plain text, blanks collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", markup)))


# ----------------------------------------------------------------------------------------------
# the report file


@pytest.fixture(scope="module")
def report_html(toy_run) -> str:
    path = toy_run / "results/report.html"
    assert path.is_file(), "the toy run wrote no results/report.html"
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def results(report_html) -> dict:
    return embedded(report_html, "results")


@pytest.fixture(scope="module")
def categories(report_html) -> dict:
    return embedded(report_html, "categories")


@pytest.fixture(scope="module")
def config(toy_run) -> dict:
    return yaml.safe_load((toy_run / "config/config.yaml").read_text())


def test_rules_declare_the_promised_report_outputs(toy_run):
    """The rule parser finds what the issue lists, so the comparison below is not vacuous."""
    expected = expected_results(toy_run)
    promised = {
        "1. QC": [
            *(f"results/qc/{s}/qc_metrics.png" for s in TOY_SAMPLES),
            "results/tables/qc_ledger.tsv",
            "results/plots/qc_ledger.png",
        ],
        "2. Integration": [
            "results/plots/umap.png",
            "results/tables/integration_metrics.tsv",
            "results/plots/integration_metrics.png",
        ],
        "3. Clusters and cell types": [
            "results/tables/markers.tsv",
            "results/tables/leiden_resolutions.tsv",
            "results/tables/cluster_annotation.tsv",
            "results/tables/cell_type_composition.tsv",
        ],
        "4. Differential expression": [
            "results/tables/de/timepoint_de.tsv",
            "results/tables/de/timepoint_de_summary.tsv",
            "results/plots/de_volcano.png",
        ],
        "5. Clones": [
            *(
                f"results/clones/patient~{p}/{f}"
                for p in TOY_PATIENTS
                for f in ("sources.tsv", "cnv_heatmap.png")
            ),
            *(f"results/plots/clones/patient~{p}/dynamics.png" for p in TOY_PATIENTS),
            "results/tables/clones/frequencies.tsv",
            "results/tables/clones/classes.tsv",
            "results/tables/clones/comparisons.tsv",
            "results/plots/clones/cohort_overview.png",
            "results/tables/clones/resistance_de.tsv",
            "results/plots/clones/signatures.png",
        ],
    }
    for section, paths in promised.items():
        for path in paths:
            assert path in expected, f"{path} is not marked with report() in the rules"
            assert expected[path]["category"] == section, path
    assert {e["category"] for e in expected.values()} == set(SECTIONS)


def test_every_report_output_is_embedded_in_its_section(toy_run, results, categories):
    expected = expected_results(toy_run)
    assert sorted(results) == sorted(expected)
    assert sorted(categories) == sorted(SECTIONS)
    for path, want in expected.items():
        section = categories[want["category"]]
        assert want["subcategory"] in section, (path, want["subcategory"], sorted(section))
        assert path in section[want["subcategory"]], path
        got = results[path]
        assert got["labels"] == want["labels"], path
        assert got["filename"] == Path(path).name
    # per-sample and per-patient subsections hold exactly the toy's samples and patients
    assert sorted(s for s in categories["1. QC"] if s != "Other") == TOY_SAMPLES
    assert {"P1", "P2", "P3", "Cohort", "Resistant vs sensitive"} == set(categories["5. Clones"])
    # every listed path has a result, and each result is listed once
    listed = [p for sub in categories.values() for paths in sub.values() for p in paths]
    assert sorted(listed) == sorted(results)


def test_embedded_files_are_the_workflow_outputs_byte_for_byte(toy_run, results):
    """Each result is a data: URL of the whole file, so the report stands alone."""
    for path, entry in results.items():
        uri = entry["data_uri"]
        header, _, payload = uri.partition(",")
        assert header.startswith("data:") and header.endswith(";base64"), (path, header[:60])
        mime = header[len("data:") :].split(";")[0]
        assert mime == entry["mime_type"], path
        if path.endswith(".png"):
            assert mime == "image/png", path
        else:
            assert mime == "text/tab-separated-values", (path, mime)
        assert base64.b64decode(payload) == (toy_run / path).read_bytes(), path


def test_report_tables_have_a_header(toy_run, results):
    """Every table offered in the report parses with its column names, even when it has no rows
    (an analyst downloading it must see what was computed, or that nothing was)."""
    for path in sorted(p for p in results if p.endswith(".tsv")):
        lines = (toy_run / path).read_text().splitlines()
        assert lines and lines[0].strip(), f"{path} has no header line"
        table = pd.read_csv(toy_run / path, sep="\t")
        assert len(table.columns) >= 2, path


def test_captions_are_rendered_with_the_settings_used(results, config, report_html):
    for path, entry in results.items():
        caption = entry["caption"]
        assert caption.strip(), f"{path} has no caption"
        assert "{{" not in caption and "snakemake.config" not in caption, (path, caption)
    qc, cl = config["qc"], config["clustering"]

    def text(path):
        return strip_tags(results[path]["caption"])

    qc_caption = text("results/qc/P1_diagnosis/qc_metrics.png")
    assert f"{qc['nmads_counts']} MADs (log scale)" in qc_caption
    assert f"median + {qc['nmads_mito']} MADs" in qc_caption
    assert f"floors of {qc['min_counts']} UMIs and {qc['min_genes']} genes" in qc_caption
    assert f"Top {cl['n_markers']} marker genes" in text("results/tables/markers.tsv")
    assert str(cl["resolutions"]) in text("results/tables/leiden_resolutions.tsv")
    assert f"fewer than {config['de']['min_cells']} cells" in text("results/plots/de_volcano.png")
    assert f"against {config['de']['reference_timepoint']}" in text(
        "results/tables/de/timepoint_de.tsv"
    )
    assert f"adjusted p < {config['clones']['dynamics']['alpha']}" in text(
        "results/tables/clones/classes.tsv"
    )
    umap_caption = text("results/plots/umap.png")
    assert f"UMAP of the {config['integration']['method']}-integrated" in umap_caption
    start = cl.get("umap_init", "pca")
    assert (
        "first two principal components" if start == "pca" else "spectral layout"
    ) in umap_caption
    desc = strip_tags(embedded(report_html, "workflow_desc"))
    assert f"Samples: {config['samples']}" in desc
    assert f"seed {config['seed']}" in desc


def test_captions_follow_the_config_of_the_run(toy_run, tmp_path):
    """Captions are templates, not text: a report made with other settings states those."""
    out = tmp_path / "report.html"
    extra = tmp_path / "other.yaml"
    extra.write_text("qc:\n  nmads_counts: 7\n  min_genes: 150\n")
    snakemake(toy_run, "--report", str(out), "--configfile", "config/config.yaml", str(extra))
    results = embedded(out.read_text(encoding="utf-8"), "results")
    caption = strip_tags(results["results/qc/P2_relapse/qc_metrics.png"]["caption"])
    assert "7 MADs (log scale)" in caption
    assert "floors of 200 UMIs and 150 genes" in caption


def test_report_before_the_run_fails_and_writes_nothing(tmp_path):
    """Asking for the report before the workflow ran fails and writes no report file."""
    workdir = copy_repo(tmp_path)
    result = snakemake(workdir, "--report", "results/report.html", check=False)
    assert result.returncode != 0
    assert not (workdir / "results/report.html").exists()


# ----------------------------------------------------------------------------------------------
# the report in a browser


def _browser_or_fail():
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"Chromium is not installed ({CHROMIUM} missing): run `make test`, which installs it "
            "(apt-get install chromium)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the Python package playwright is not installed: run `make test`")
    return sync_playwright


def test_report_renders_in_chromium(toy_run, results, categories, tmp_path, record_property):
    sync_playwright = _browser_or_fail()
    report = toy_run / "results/report.html"
    problems: list[str] = []
    outside: list[str] = []
    shot = tmp_path / "report.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.on(
                "console",
                lambda msg: msg.type == "error" and problems.append(f"console: {msg.text}"),
            )
            page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
            page.on(
                "request",
                lambda req: (
                    None
                    if req.url.startswith(("data:", "file:", "blob:", "about:"))
                    else outside.append(req.url)
                ),
            )
            page.goto(report.as_uri(), wait_until="load")
            nav = page.locator("nav").first
            for section in SECTIONS:
                nav.get_by_text(section, exact=True).wait_for(state="visible", timeout=30_000)
            assert page.locator("#loading-screen").is_hidden()

            n_images = n_tables = 0
            for section in SECTIONS:
                for sub in sorted(categories[section]):
                    _open(page, section, sub, single=len(categories[section]) == 1)
                    rows = page.locator("nav table tbody tr")
                    assert rows.count() == len(categories[section][sub]), (section, sub)
                    for i in range(rows.count()):
                        view = rows.nth(i).locator("td").last.locator("a").first
                        href = view.get_attribute("href")
                        if href and href.startswith("data:"):
                            # tables are offered as a download of the embedded file
                            assert href in {results[p]["data_uri"] for p in results}, (section, sub)
                            assert view.get_attribute("download"), (section, sub)
                            n_tables += 1
                        else:
                            view.click()
                            img = page.locator("div.p-3 > img").first
                            img.wait_for(state="visible", timeout=15_000)
                            src = img.get_attribute("src")
                            assert src.startswith("data:image/png;"), (section, sub)
                            assert src in {results[p]["data_uri"] for p in results}
                            loaded = page.wait_for_function(
                                "img => img.complete && img.naturalWidth > 0",
                                arg=img.element_handle(),
                                timeout=15_000,
                            )
                            assert loaded
                            n_images += 1
            n_png = sum(p.endswith(".png") for p in results)
            assert (n_images, n_tables) == (n_png, len(results) - n_png)

            # the answer page comes first and has a panel for every patient
            page.locator("nav ol li a").first.click()  # home breadcrumb
            page.locator("nav ul li a").first.wait_for(state="visible", timeout=15_000)
            entries = [t.strip() for t in page.locator("nav ul li a").all_inner_texts()]
            sections = [t for t in entries if re.match(r"^\d+\. ", t)]  # after General's entries
            assert sections[0] == "0. Answer", entries
            _open(page, "0. Answer", "Cohort", single=False)
            page.locator("nav ol li a").first.click()
            page.locator("nav ul li a").filter(has_text=re.compile("^0. Answer$")).click()
            listed = {t.strip() for t in page.locator("nav ul li a").all_inner_texts()}
            assert set(TOY_PATIENTS) | {"Cohort"} <= listed, listed
            for patient in TOY_PATIENTS:
                _open(page, "0. Answer", patient, single=False)
                page.locator("nav table tbody tr").first.locator("td").last.locator(
                    "a"
                ).first.click()
                page.locator("div.p-3 > img").first.wait_for(state="visible", timeout=15_000)

            # the caption of a result is shown with the settings of the run
            _open(page, "1. QC", "P1_diagnosis", single=False)
            page.locator("nav table tbody tr").first.locator("td").last.locator("a").nth(1).click()
            page.get_by_text("MADs (log scale)", exact=False).first.wait_for(timeout=15_000)

            _open(page, "5. Clones", "P3", single=False)
            page.locator("nav table tbody tr").filter(has_text="clone dynamics").locator(
                "td"
            ).last.locator("a").first.click()
            page.locator("div.p-3 > img").first.wait_for(state="visible", timeout=15_000)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    record_property("report_screenshot", str(shot))
    print(f"report screenshot: {shot}")
    assert shot.is_file() and shot.stat().st_size > 10_000
    assert not problems, "\n".join(problems)
    assert not outside, f"the report fetched from outside the file: {outside[:5]}"


def _open(page, section: str, sub: str, *, single: bool) -> None:
    """From anywhere: home, then the section, then the subsection (unless it is the only one)."""
    page.locator("nav ol li a").first.click()  # home breadcrumb
    page.locator("nav ul li a").filter(has_text=re.compile(f"^{re.escape(section)}$")).click()
    if not single:
        page.locator("nav ul li a").filter(has_text=re.compile(f"^{re.escape(sub)}$")).click()
    page.locator("nav table tbody tr").first.wait_for(state="visible", timeout=15_000)


def test_missing_chromium_fails_with_instructions(monkeypatch):
    """Without the browser the check fails (it is not skipped) and says how to install it."""
    monkeypatch.setattr(f"{__name__}.CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(pytest.fail.Exception, match=r"run `make test`"):
        _browser_or_fail()
