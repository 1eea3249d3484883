"""``squeezelab codec``: list, encode, decode and eval through the command line."""

import json

from PIL import Image

from squeezelab.cli import main


def _run(make_checkpoint):
    return make_checkpoint("squeeze_codec", (3, 32, 32), channels=8, latent_channels=6)


def test_encode_then_decode_writes_one_file_per_input_in_the_inputs_mode(
    make_checkpoint, write_images, tmp_path, capsys
):
    run = _run(make_checkpoint)
    gray = write_images(tmp_path / "in", ["scan.png"], size=24, mode="L")
    colour = write_images(tmp_path / "in", ["photo.png"], size=20)
    assert main(["codec", "encode", "--model", str(run), *map(str, gray + colour), "-o", str(tmp_path / "z")]) == 0
    files = sorted((tmp_path / "z").iterdir())
    assert [f.name for f in files] == ["photo.sqzi", "scan.sqzi"]
    assert main(["codec", "decode", "--model", str(run), *map(str, files), "-o", str(tmp_path / "png")]) == 0
    assert Image.open(tmp_path / "png" / "scan.png").mode == "L"
    assert Image.open(tmp_path / "png" / "photo.png").size == (20, 20)
    assert capsys.readouterr().out.count(".png") == 2


def test_bad_files_get_one_line_and_exit_2(make_checkpoint, write_images, tmp_path, capsys):
    run = _run(make_checkpoint)
    (tmp_path / "notes.sqzi").write_bytes(b"hello world, not compressed")
    assert main(["codec", "decode", "--model", str(run), str(tmp_path / "notes.sqzi"), "-o", str(tmp_path)]) == 2
    assert "not a .sqzi file" in capsys.readouterr().err
    tiny = write_images(tmp_path, ["tiny.png"], size=4)
    assert main(["codec", "encode", "--model", str(run), str(tiny[0]), "-o", str(tmp_path / "z")]) == 2
    err = capsys.readouterr().err
    assert "at least 8x8" in err and "Traceback" not in err
    assert main(["codec", "encode", "--quality", "2", "--model", str(run), str(tiny[0]), "-o", str(tmp_path)]) == 2


def test_list_json_and_eval_from_a_run(make_checkpoint, write_images, tmp_path, capsys):
    assert main(["codec", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert isinstance(listing, list) and all(set(entry) == {"model", "qualities"} for entry in listing)
    run = _run(make_checkpoint)
    write_images(tmp_path / "photos", ["a.png", "b.png"], size=24)
    args = ["codec", "eval", "--images", str(tmp_path / "photos"), "--model", str(run), "--out", str(tmp_path / "rd")]
    assert main(args) == 0
    results = json.loads((tmp_path / "rd" / "results.json").read_text())
    assert results["images"] == 2 and results["codecs"][0]["model"] == "squeeze_codec"
    assert (tmp_path / "rd" / "rd.png").stat().st_size > 0 and "BD-rate" in capsys.readouterr().out


def test_predict_points_a_codec_to_the_codec_command(make_checkpoint, write_images, tmp_path, capsys):
    image = write_images(tmp_path, ["a.png"], size=32)
    assert main(["predict", str(_run(make_checkpoint)), str(image[0])]) == 2
    assert "squeezelab codec encode" in capsys.readouterr().err
