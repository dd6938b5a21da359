"""ImageNet-style folders: layout, balanced hold-out, transforms, errors naming the problem."""

import pytest
import torch
from PIL import Image

from aquasurf_core.training.image_folder import IMAGENET_MEAN, load_image_folder


def test_splits_shapes_and_balanced_hold_out(tmp_path, image_folder_writer):
    root = image_folder_writer(tmp_path)
    s = load_image_folder(root, image_size=32, validation_per_class=1)
    assert s.classes == ["cat", "dog", "eel"] and s.num_classes == 3
    assert (len(s.train), len(s.validation), len(s.test)) == (9, 3, 6)
    assert sorted(s.validation.labels.tolist()) == [0, 1, 2]
    assert not set(s.train.paths) & set(s.validation.paths)
    x, y = s.test[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == 0
    # evaluation is deterministic (resize + centre crop), training is augmented
    torch.testing.assert_close(s.validation[0][0], s.validation[0][0], rtol=0, atol=0)
    torch.manual_seed(0)
    a = s.train[0][0]
    torch.manual_seed(1)
    assert not torch.equal(a, s.train[0][0])
    assert s.fingerprint == load_image_folder(root, image_size=32,
                                              validation_per_class=1).fingerprint
    # normalised with the ImageNet statistics: a mid-grey image maps near (0.5 - mean) / std
    grey = Image.new("RGB", (40, 40), (128, 128, 128))
    grey.save(root / "val" / "cat" / "cat_0.jpg")
    value = s.test[0][0][0, 16, 16].item()
    assert value == pytest.approx((128 / 255 - IMAGENET_MEAN[0]) / 0.229, abs=0.05)
    assert s.fingerprint != load_image_folder(root, image_size=32,  # a changed file is seen
                                              validation_per_class=1).fingerprint


def test_errors_name_the_problem(tmp_path, image_folder_writer):
    with pytest.raises(FileNotFoundError, match="image folder .*train not found"):
        load_image_folder(tmp_path / "none")
    root = image_folder_writer(tmp_path / "a")
    (root / "val" / "fox").mkdir()
    with pytest.raises(ValueError, match="other classes than train/.*extra \\['fox'\\]"):
        load_image_folder(root)
    root = image_folder_writer(tmp_path / "b")
    (root / "train" / "fox").mkdir()
    (root / "val" / "fox").mkdir()
    with pytest.raises(ValueError, match="fox has no images"):
        load_image_folder(root)
    root = image_folder_writer(tmp_path / "c")
    with pytest.raises(ValueError, match="cannot hold out 4"):
        load_image_folder(root, validation_per_class=4)
    with pytest.raises(ValueError, match="image_size must be an integer"):
        load_image_folder(root, image_size=4)
    (root / "val" / "cat" / "cat_0.jpg").write_bytes(b"not a jpeg")
    s = load_image_folder(root, image_size=32, validation_per_class=1)
    with pytest.raises(ValueError, match="cat_0.jpg is not a readable image"):
        s.test[0]
