import base64
import math
import re
import shutil
import subprocess

import pytest
from PIL import Image, ImageStat

from squeezelab.report.render import format_value, render_report

PLOTS = {"reconstructions": (160, 60), "parameters": (120, 80)}


def write_png(path, size):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.linear_gradient("L").resize(size).convert("RGB").save(path, format="PNG")


@pytest.fixture
def out_dir(tmp_path):
    for name, size in PLOTS.items():
        write_png(tmp_path / "plots" / f"{name}.png", size)
    return tmp_path


def make_results():
    return {
        "title": "Autoencoders on mnist:../shared/data/mnist",
        "kind": "autoencoders",
        "summary": "Three autoencoders trained with the same budget on MNIST, measured on the same machine.",
        "data": {
            "spec": "mnist:../shared/data/mnist",
            "train": 48600,
            "val": 5400,
            "test": 6000,
            "test_source": "held out: 10% of the training set, seed 0, never used for training or model selection",
            "image_shape": [1, 28, 28],
        },
        "machine": {"description": "x86_64, 2 threads, torch 2.13.0+cpu", "device": "cpu", "matmul_peak_gflops": 186.0},
        "budget": {"epochs": 5, "max_time_s": 120.0},
        "columns": [
            {"key": "model", "label": "model", "unit": "", "format": "text"},
            {"key": "params", "label": "parameters", "unit": "", "format": "count"},
            {"key": "file_bytes", "label": "file", "unit": "bytes", "format": "bytes"},
            {"key": "macs", "label": "MACs", "unit": "per image", "format": "si"},
            {"key": "latency_ms", "label": "latency", "unit": "ms, batch 1", "format": "float2"},
            {"key": "throughput", "label": "throughput", "unit": "img/s", "format": "int"},
            {"key": "test_mse", "label": "test MSE", "unit": "", "format": "float4"},
            {"key": "test_psnr", "label": "test PSNR", "unit": "dB", "format": "float2"},
            {"key": "probe_acc", "label": "linear probe", "unit": "accuracy", "format": "percent"},
            {"key": "smaller", "label": "smaller", "unit": "than dense_ae", "format": "ratio"},
        ],
        "rows": [
            {
                "model": "dense_ae",
                "status": "ok",
                "params": 106448,
                "file_bytes": 425880,
                "macs": 105344,
                "latency_ms": 0.084,
                "throughput": 123456.7,
                "test_mse": 0.011,
                "test_psnr": 19.586,
                "probe_acc": 0.9123,
                "smaller": 1.0,
            },
            {
                "model": "squeeze_ae",
                "status": "ok",
                "params": 23965,
                "file_bytes": 98204,
                "macs": 1598976,
                "throughput": 8765.4,
                "test_mse": 0.0102,
                "test_psnr": 19.914,
                "probe_acc": None,
                "smaller": 4.442,
            },
            {"model": "conv_ae", "status": "failed", "error": "the loss became nan at epoch 2 (lr 0.01 too high?)"},
        ],
        "claims": [
            {
                "id": 1,
                "claim": "A squeeze autoencoder reconstructs about as well as a traditional one.",
                "verdict": "holds",
                "evidence": "test MSE: squeeze_ae 0.0102, dense_ae 0.0110 (-7.3%; 'about as well' = within 10%)",
            },
            {
                "id": 2,
                "claim": "...and it runs faster.",
                "verdict": "does not hold",
                "evidence": "latency: squeeze_ae 0.46 ms, dense_ae 0.08 ms",
            },
            {
                "id": 3,
                "claim": "A convolutional autoencoder beats both.",
                "verdict": "not measurable here",
                "evidence": "needs conv_ae to have trained",
            },
        ],
        "plots": [
            {"title": "Originals and reconstructions", "path": "plots/reconstructions.png", "caption": "Test images."},
            {"title": "Model size", "path": "plots/parameters.png", "caption": "Parameters, log scale."},
        ],
        "notes": ["Latency is the median of 50 runs at batch 1 after 10 warm-up runs."],
    }


def test_writes_both_reports_and_no_temporary_files(out_dir):
    md, html = render_report(make_results(), str(out_dir))
    assert (md, html) == (out_dir / "report.md", out_dir / "report.html")
    assert sorted(p.name for p in out_dir.iterdir()) == ["plots", "report.html", "report.md"]
    assert md.read_text().startswith("# Autoencoders on mnist:../shared/data/mnist\n")


def test_creates_the_output_folder(tmp_path):
    results = make_results()
    results["plots"] = []
    md, html = render_report(results, tmp_path / "new" / "run")
    assert md.exists() and html.exists()


@pytest.mark.parametrize(
    ("value", "fmt", "text"),
    [
        ("dense_ae", "text", "dense_ae"),
        (106448, "count", "106,448"),
        (1234.6, "int", "1235"),
        (0.084, "float2", "0.08"),
        (0.011, "float4", "0.0110"),
        (0.9123, "percent", "91.2%"),
        (425880, "bytes", "415.90 KiB"),
        (1598976, "si", "1.6M"),
        (48.24, "ratio", "48.2x"),
        (None, "float4", "–"),
        (math.nan, "count", "nan"),
    ],
)
def test_format_value(value, fmt, text):
    assert format_value(value, fmt) == text


def test_unknown_format_is_an_error():
    with pytest.raises(ValueError, match="unknown column format 'hex'"):
        format_value(1, "hex")


def test_markdown_table_has_units_formatted_numbers_and_the_failed_row(out_dir):
    md = render_report(make_results(), out_dir)[0].read_text()
    lines = md.splitlines()
    header = (
        "| model | parameters | file (bytes) | MACs (per image) | latency (ms, batch 1) | throughput (img/s) "
        "| test MSE | test PSNR (dB) | linear probe (accuracy) | smaller (than dense_ae) |"
    )
    assert header in lines
    assert lines[lines.index(header) + 1] == "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    assert "| dense_ae | 106,448 | 415.90 KiB | 105K | 0.08 | 123457 | 0.0110 | 19.59 | 91.2% | 1.0x |" in lines
    assert "| squeeze_ae | 23,965 | 95.90 KiB | 1.6M | – | 8765 | 0.0102 | 19.91 | – | 4.4x |" in lines
    failed = "| conv_ae **failed**: the loss became nan at epoch 2 (lr 0.01 too high?) |" + " – |" * 9
    assert failed in lines
    assert "- **Data:** mnist:../shared/data/mnist; 1x28x28 images; 48,600 train, 5,400 validation, 6,000 test" in lines
    assert "- **Budget:** 5 epochs; at most 120 s of training" in lines


def test_markdown_claims_plots_and_notes(out_dir):
    md = render_report(make_results(), out_dir)[0].read_text()
    assert "## Claims" in md
    assert "1. **holds**: A squeeze autoencoder reconstructs about as well as a traditional one. Evidence: " in md
    assert "2. **does not hold**: ...and it runs faster. Evidence: latency: squeeze_ae 0.46 ms" in md
    assert "3. **not measurable here**: A convolutional autoencoder beats both." in md
    image = "![Originals and reconstructions](plots/reconstructions.png)"
    assert f"{image}\n\n**Originals and reconstructions.** Test images." in md
    assert "- Latency is the median of 50 runs" in md


def test_markdown_cells_escape_the_column_separator(out_dir):
    results = make_results()
    results["rows"][0]["model"] = "dense|ae"
    md = render_report(results, out_dir)[0].read_text()
    assert r"| dense\|ae | 106,448 |" in md


def test_html_is_self_contained_and_embeds_every_plot(out_dir):
    page = render_report(make_results(), out_dir)[1].read_text()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    for external in ('src="http', "<link", "<script", "url("):
        assert external not in page
    embedded = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert [base64.b64decode(b) for b in embedded] == [
        (out_dir / "plots" / f"{name}.png").read_bytes() for name in PLOTS
    ]


def test_html_shows_verdict_badges_and_marks_the_failed_row(out_dir):
    page = render_report(make_results(), out_dir)[1].read_text()
    assert '<span class="badge holds">holds</span>' in page
    assert '<span class="badge fails">does not hold</span>' in page
    assert '<span class="badge">not measurable here</span>' in page  # the plain badge is grey
    failed = re.search(r'<tr class="failed">(.*?)</tr>', page).group(1)
    assert "conv_ae" in failed and ">failed</span>" in failed
    assert "the loss became nan at epoch 2" in failed
    assert failed.count("<td") == 10 and failed.count(">–</td>") == 9
    assert "<th>model</th>" in page and '<th class="num">test PSNR<small>dB</small></th>' in page


def test_html_escapes_every_string(out_dir):
    results = make_results()
    results["title"] += " <b>"
    results["rows"][0]["model"] = "<b>dense_ae</b>"
    results["rows"][2]["error"] = "<b>nan</b> & worse"
    results["claims"][0]["evidence"] = "<b>fewer</b>"
    results["plots"][0]["caption"] = '<b>"x"</b>'
    results["notes"] = ["<b>note</b>"]
    page = render_report(results, out_dir)[1].read_text()
    assert "<b>" not in page
    assert "&lt;b&gt;dense_ae&lt;/b&gt;" in page
    assert "&lt;b&gt;nan&lt;/b&gt; &amp; worse" in page
    assert "&lt;b&gt;&quot;x&quot;&lt;/b&gt;" in page


def test_a_missing_plot_is_left_out_with_a_note(out_dir):
    (out_dir / "plots" / "reconstructions.png").unlink()
    md, html = render_report(make_results(), out_dir)
    note = "Plot “Originals and reconstructions” left out: plots/reconstructions.png could not be read"
    assert note in md.read_text() and note in html.read_text()
    assert "![Originals and reconstructions]" not in md.read_text()
    assert html.read_text().count("data:image/png;base64,") == 1  # the other plot is still there


def test_chromium_renders_the_html_at_phone_width(out_dir, tmp_path_factory):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed")
    html = render_report(make_results(), out_dir)[1]
    screenshot = tmp_path_factory.mktemp("screenshot") / "report.png"
    profile = tmp_path_factory.mktemp("chromium-profile")
    command = [
        browser,
        "--headless",
        "--no-sandbox",  # chromium refuses to start its sandbox as root, which CI containers often are
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=412,900",
        f"--screenshot={screenshot}",
        html.resolve().as_uri(),
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert screenshot.exists(), f"no screenshot (exit code {finished.returncode}): {finished.stderr[-2000:]}"
    with Image.open(screenshot) as image:
        assert image.width == 412
        assert ImageStat.Stat(image.convert("L")).var[0] > 100, "the page rendered blank"
