import numpy as np
import pytest
import torch
from PIL import Image

from squeezelab.checkpoint import Checkpoint
from squeezelab.codec.api import (
    MIN_SIDE,
    _loaded,
    decode_bytes,
    decode_files,
    encode_files,
    encode_image,
    fingerprint,
    read_image,
)
from squeezelab.compress.config import CompressConfig
from squeezelab.compress.container import sqz_from_bytes, sqz_to_bytes
from squeezelab.compress.load import model_from_sqz
from squeezelab.compress.pipeline import to_sqz
from squeezelab.errors import ConfigError, DataError, FileFormatError


def _reference(codec, image: np.ndarray) -> np.ndarray:
    """What the model itself reconstructs, without any file."""
    x = torch.from_numpy(image).float().div(255)
    x = (x[None] if x.dim() == 2 else x.permute(2, 0, 1))[None].expand(-1, codec.model.in_chans, -1, -1)
    with torch.no_grad():
        x_hat = codec.model.decode(codec.model.encode(x), image.shape[:2])[0]
    pixels = torch.round(x_hat.clamp(0, 1) * 255)
    pixels = torch.round(pixels.mean(0)) if image.ndim == 2 else pixels.permute(1, 2, 0)
    return pixels.to(torch.uint8).numpy()


@pytest.mark.parametrize("name", ["conv_codec", "squeeze_codec"])
@pytest.mark.parametrize(("in_chans", "shape"), [(3, (33, 47, 3)), (3, (20, 16)), (1, (40, 24))])
def test_decode_of_encode_is_the_models_reconstruction_bit_for_bit(tiny_codec, name, in_chans, shape):
    codec = tiny_codec(name, in_chans)
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    decoded = decode_bytes(codec, encode_image(codec, image))
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert np.array_equal(decoded, _reference(codec, image))


def test_a_file_from_other_weights_is_refused(tiny_codec):
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    data = encode_image(tiny_codec(seed=0), image)
    with pytest.raises(FileFormatError, match="other weights"):
        decode_bytes(tiny_codec(seed=1), data, "a.sqzi")


def test_images_too_small_too_large_or_of_the_wrong_mode_are_refused(tiny_codec):
    with pytest.raises(DataError, match=f"at least {MIN_SIDE}x{MIN_SIDE}"):
        encode_image(tiny_codec(), np.zeros((MIN_SIDE - 1, 30, 3), dtype=np.uint8))
    with pytest.raises(DataError, match="at most"):
        encode_image(tiny_codec(), np.zeros((8, 70_000), dtype=np.uint8))
    with pytest.raises(DataError, match="codes grayscale"):
        encode_image(tiny_codec(in_chans=1), np.zeros((16, 16, 3), dtype=np.uint8))


def test_files_in_files_out_in_the_inputs_mode(tiny_codec, tmp_path):
    codec = tiny_codec()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (30, 20), dtype=np.uint8), "L").save(tmp_path / "gray.png")
    Image.fromarray(rng.integers(0, 256, (16, 18, 3), dtype=np.uint8), "RGB").save(tmp_path / "colour.jpg")
    files = encode_files([str(tmp_path / "gray.png"), str(tmp_path / "colour.jpg")], tmp_path / "out", codec)
    assert [f.name for f in files] == ["gray.sqzi", "colour.sqzi"]
    # decode_files finds shipped weights from the header; a run's files need the codec: decode by hand.
    for path, mode, size in zip(files, ("L", "RGB"), ((20, 30), (18, 16)), strict=True):
        pixels = decode_bytes(codec, path.read_bytes())
        assert Image.fromarray(pixels).mode == mode and Image.fromarray(pixels).size == size
    with pytest.raises(FileFormatError, match="trained run's codec"):
        decode_files([str(files[0])], tmp_path / "png")


def test_bad_inputs_name_the_file(tiny_codec, tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(DataError, match="notes.png is not a readable image"):
        encode_files([str(tmp_path / "notes.png")], tmp_path / "out", tiny_codec())
    with pytest.raises(DataError, match="image not found"):
        read_image(tmp_path / "missing.png")
    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "sub" / "a.png")
    with pytest.raises(ConfigError, match="share the name 'a'"):
        encode_files([str(tmp_path / "a.png"), str(tmp_path / "sub" / "a.png")], tmp_path / "out", tiny_codec())
    assert not (tmp_path / "out").exists()


def test_a_codec_from_a_sqz_file_keeps_its_tables_and_decodes_the_original_files(tiny_codec):
    codec = tiny_codec("conv_codec")
    data, _ = sqz_to_bytes(to_sqz(codec.model, {}, CompressConfig(small_dtype="float32")))
    model, meta = model_from_sqz(sqz_from_bytes(data, "codec.sqz"), "codec.sqz")
    assert model.bottleneck.tables_current and model.bottleneck.frequencies.dtype == torch.int32
    assert torch.equal(model.bottleneck.frequencies, codec.model.bottleneck.frequencies)
    loaded = _loaded(Checkpoint(model, meta, None), 0, "codec.sqz")
    assert loaded.fingerprint == codec.fingerprint == fingerprint(model)
    image = np.random.default_rng(1).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    assert np.array_equal(decode_bytes(loaded, encode_image(codec, image)), _reference(codec, image))
