import math

import numpy as np
import pytest

from squeezelab.codec.rd import _pchip, bd_rate, evaluate, jpeg_bytes, jpeg_payload_bytes, psnr, structural_similarity


def test_psnr_is_its_definition():
    a = np.zeros((4, 4), dtype=np.uint8)
    b = np.full((4, 4), 5, dtype=np.uint8)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 25))
    assert psnr(a, a) == 100.0


def test_ssim_of_an_image_with_itself_is_one_and_ms_ssim_needs_large_images():
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    scores = structural_similarity(image, image)
    assert scores["ssim"] == pytest.approx(1.0) and scores["ms_ssim"] is None
    big = np.random.default_rng(0).integers(0, 256, (170, 180), dtype=np.uint8)
    assert structural_similarity(big, big)["ms_ssim"] == pytest.approx(1.0)


def test_jpeg_payload_is_the_entropy_coded_part_only():
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    data = jpeg_bytes(image, 50)
    payload = jpeg_payload_bytes(data)
    # The headers and tables of a tiny JPEG weigh hundreds of bytes; the payload is what remains.
    assert 0 < payload < len(data) - 300
    scan = data.index(b"\xff\xda")
    header = int.from_bytes(data[scan + 2 : scan + 4], "big")
    assert payload == len(data) - (scan + 2 + header) - 2  # everything between the scan header and EOI


def test_bd_rate_of_a_curve_against_itself_and_a_cheaper_copy():
    anchor = [(0.5, 28.0), (1.0, 31.0), (2.0, 34.0), (4.0, 37.0)]
    assert bd_rate(anchor, anchor) == pytest.approx(0.0, abs=1e-9)
    half = [(r / 2, p) for r, p in anchor]
    assert bd_rate(anchor, half) == pytest.approx(-50.0)
    assert bd_rate(anchor, [(1, 50.0), (2, 60.0)]) is None  # no common PSNR range


def test_bd_rate_interpolation_follows_a_sharp_bend_without_overshooting():
    # JPEG re-encoding CIFAR-10's JPEGs: PSNR jumps 6 dB for 10% more bits near their own quality.
    psnr_db = np.array([24.4, 27.1, 28.7, 29.9, 33.4, 39.6, 40.9, 43.1])
    log_rate = np.log([0.45, 0.74, 1.0, 1.48, 1.69, 1.87, 2.03, 2.37])
    at = np.linspace(psnr_db[0], psnr_db[-1], 500)
    values = _pchip(psnr_db, log_rate, at)
    np.testing.assert_allclose(_pchip(psnr_db, log_rate, psnr_db), log_rate, atol=1e-12)
    assert np.all(np.diff(values) >= -1e-12)  # monotone data stays monotone
    cubic = np.polyval(np.polyfit(psnr_db, log_rate, 3), at)
    assert (
        np.abs(cubic - np.interp(at, psnr_db, log_rate)).max()
        > 0.15
        > np.abs(values - np.interp(at, psnr_db, log_rate)).max()
    )


def test_evaluate_measures_files_it_wrote(tiny_codec, tmp_path):
    rng = np.random.default_rng(0)
    images = [
        ("a", rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)),
        ("b", rng.integers(0, 256, (16, 16), dtype=np.uint8)),
    ]
    results = evaluate(images, [tiny_codec()], tmp_path, jpeg_qualities=(50, 90), webp_qualities=(50,))
    point = results["codecs"][0]
    files = sorted((tmp_path / "files").rglob("*.sqzi"))
    assert len(files) == 2
    bits = [8 * f.stat().st_size / (h * w) for f, (h, w) in zip(files, ((16, 24), (16, 16)), strict=True)]
    assert point["bpp"] == pytest.approx(np.mean(bits))
    assert [p["quality"] for p in results["jpeg"]] == [50, 90] and results["jpeg"][0]["bpp_payload"] < results["jpeg"][
        0
    ]["bpp"]
