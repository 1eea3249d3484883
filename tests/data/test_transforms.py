import pytest
import torch
import torch.nn.functional as F

from squeezelab.data import BatchTransform, normalize, random_crop, random_flip
from squeezelab.data.transforms import alternating_flips, flip_where, random_cutout


def _batch(n=16, channels=3, size=6, dtype=torch.uint8) -> torch.Tensor:
    return torch.randint(1, 256, (n, channels, size, size), generator=torch.Generator().manual_seed(0)).to(dtype)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_each_crop_is_a_window_of_its_padded_image(dtype):
    batch = _batch(dtype=dtype)
    out = random_crop(batch, 2, torch.Generator().manual_seed(1))
    assert out.shape == batch.shape and out.dtype == dtype
    padded = F.pad(batch, (2, 2, 2, 2))
    offsets = set()
    for image, crop in zip(padded, out, strict=True):
        windows = [(y, x) for y in range(5) for x in range(5) if torch.equal(image[:, y : y + 6, x : x + 6], crop)]
        assert windows  # the (nonzero) random pixels make the window unique
        offsets.add(windows[0])
    assert len(offsets) > 1  # offsets differ between images


def test_crop_is_seeded_and_zero_padding_is_identity():
    batch = _batch()
    first = random_crop(batch, 3, torch.Generator().manual_seed(5))
    assert torch.equal(first, random_crop(batch, 3, torch.Generator().manual_seed(5)))
    assert random_crop(batch, 0) is batch


def test_reflect_crop_is_a_window_of_the_mirrored_image_at_the_drawn_offset():
    batch = _batch()
    out = random_crop(batch, 2, torch.Generator().manual_seed(1), mode="reflect")
    offsets = torch.randint(0, 5, (2, len(batch)), generator=torch.Generator().manual_seed(1))
    padded = F.pad(batch, (2, 2, 2, 2), mode="reflect")
    for image, crop, y, x in zip(padded, out, offsets[0], offsets[1], strict=True):
        assert torch.equal(crop, image[:, y : y + 6, x : x + 6])
    assert len(set(map(tuple, offsets.T.tolist()))) > 1
    assert (out > 0).all()  # the images hold no zeros, so no black border came in
    assert (random_crop(batch, 2, torch.Generator().manual_seed(1)) == 0).any()


def test_reflect_crop_rejects_padding_as_large_as_the_image():
    with pytest.raises(ValueError, match="smaller than the image"):
        random_crop(_batch(size=4), 4, mode="reflect")
    with pytest.raises(ValueError, match="'zeros' or 'reflect'"):
        random_crop(_batch(), 2, mode="edge")


def test_flip_mirrors_exactly_the_chosen_images():
    batch = _batch(n=64)
    out = random_flip(batch, torch.Generator().manual_seed(7))
    chosen = torch.rand(64, generator=torch.Generator().manual_seed(7)) < 0.5
    assert 0 < chosen.sum() < 64
    assert torch.equal(out[chosen], batch[chosen].flip(-1))
    assert torch.equal(out[~chosen], batch[~chosen])
    assert torch.equal(random_flip(batch, p=0.0), batch) and torch.equal(random_flip(batch, p=1.0), batch.flip(-1))


def test_alternating_flips_show_each_image_both_ways_every_two_epochs():
    parity = torch.rand(1000, generator=torch.Generator().manual_seed(0)) < 0.5
    assert 400 < parity.sum() < 600
    for epoch in range(4):
        this, following = alternating_flips(parity, epoch), alternating_flips(parity, epoch + 1)
        assert torch.equal(this ^ following, torch.ones(1000, dtype=torch.bool))
    assert torch.equal(alternating_flips(parity, 0), parity) and torch.equal(alternating_flips(parity, 2), parity)
    batch = _batch(n=4)
    chosen = torch.tensor([True, False, False, True])
    out = flip_where(batch, chosen)
    assert torch.equal(out[chosen], batch[chosen].flip(-1)) and torch.equal(out[~chosen], batch[~chosen])


def test_cutout_blanks_one_clipped_square_per_image_with_the_fill():
    batch = _batch(n=256, size=8)  # pixels 1..255, never the fill
    out = random_cutout(batch, 4, fill=(0, 0, 0), generator=torch.Generator().manual_seed(3))
    blank = out == 0
    assert torch.equal(out[~blank], batch[~blank])
    assert torch.equal(blank.all(1), blank.any(1))  # every channel of a cut pixel
    areas = set()
    for mask in blank[:, 0]:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        # One axis-aligned rectangle of at most 4 x 4: the square, clipped where its centre is near a border.
        assert 1 <= len(rows) <= 4 and 1 <= len(cols) <= 4
        assert mask.sum() == len(rows) * len(cols) and rows[-1] - rows[0] + 1 == len(rows)
        areas.add(int(mask.sum()))
    assert 16 in areas and min(areas) < 16  # whole squares inside, clipped ones at the borders
    seeded = random_cutout(batch, 4, fill=(0, 0, 0), generator=torch.Generator().manual_seed(3))
    assert torch.equal(out, seeded)
    assert random_cutout(batch, 0) is batch
    filled = random_cutout(batch, 8, fill=(7, 8, 9), generator=torch.Generator().manual_seed(3))
    assert torch.equal(filled[:, :, 3, 3], torch.tensor([7, 8, 9], dtype=torch.uint8).expand(256, 3))  # 8 covers it
    with pytest.raises(ValueError, match="3 fill values"):
        random_cutout(batch, 2, fill=(0,))


def test_batch_transform_cutout_is_zero_after_normalisation():
    batch = torch.full((64, 3, 8, 8), 250, dtype=torch.uint8)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    transform = BatchTransform(mean=mean, std=std, cutout=4)
    out = transform(batch, train=True, generator=torch.Generator().manual_seed(0))
    cut = out.abs() < 0.01  # the fill is the mean rounded to a uint8 level
    assert cut.any() and torch.equal(cut.all(1), cut.any(1))
    assert (cut[:, 0].flatten(1).sum(1) <= 16).all() and (cut[:, 0].flatten(1).sum(1) >= 1).all()
    assert torch.equal(transform(batch, train=False), normalize(batch, mean, std))


def test_normalize_values():
    images = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    out = normalize(images, (0.0, 0.2, 0.5), (1.0, 0.5, 0.25))
    assert out.dtype == torch.float32 and out.shape == (2, 3, 2, 2)
    assert out[0, :, 0, 0].tolist() == pytest.approx([0.0, 0.0, 2.0])
    assert normalize(images, (0.0,) * 3, (1.0,) * 3).max() == 1.0  # plain [0, 1] scaling
    with pytest.raises(ValueError, match="3 means"):
        normalize(images, (0.5,), (0.5,))
    with pytest.raises(TypeError, match="uint8"):
        normalize(images.float(), (0.0,) * 3, (1.0,) * 3)


def test_batch_transform_augments_only_when_training():
    batch = _batch()
    transform = BatchTransform(mean=(0.5,) * 3, std=(0.5,) * 3, crop_padding=2, flip=True)
    evaluated = transform(batch, train=False)
    assert torch.equal(evaluated, normalize(batch, (0.5,) * 3, (0.5,) * 3))
    trained = transform(batch, train=True, generator=torch.Generator().manual_seed(0))
    assert trained.dtype == torch.float32 and trained.shape == batch.shape and not torch.equal(trained, evaluated)
    again = transform(batch, train=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(trained, again)


def test_batch_transform_resizes_with_antialiasing_when_given_a_size():
    stripes = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    stripes[..., ::2] = 255  # one-pixel columns: what naive subsampling turns into a solid or empty image
    transform = BatchTransform(mean=(0.0,) * 3, std=(1.0,) * 3, size=4, channels_last=True)
    small = transform.normalize(stripes)
    assert small.shape == (2, 3, 4, 4) and small.is_contiguous(memory_format=torch.channels_last)
    # Averaged, not aliased: subsampling would keep only the white (1.0) or only the black (0.0) columns.
    torch.testing.assert_close(small[..., 1:3], torch.full_like(small[..., 1:3], 0.5))
    assert small.min() > 0.4 and small.max() < 0.6
    same = BatchTransform(mean=(0.0,) * 3, std=(1.0,) * 3, size=8).normalize(stripes)
    assert torch.equal(same, normalize(stripes, (0.0,) * 3, (1.0,) * 3))
