"""Copy-paste scenes: pasted objects lie inside the image, what they cover is removed from the masks below,
and the trainer builds the source from the training split only."""
import cv2
import numpy as np
import pytest

from train.copy_paste import CopyPasteScenes, paste_object, paste_row
from train.sample import DataError, Sample


def _object_photo(colour, h=60, w=80):
    img = np.full((h, w, 3), 30, np.uint8)
    mask = np.zeros((h, w), bool)
    cv2.circle(mask.view(np.uint8), (w // 2, h // 2), 20, 1, -1)
    img[mask] = colour
    return Sample(img, [mask], np.zeros((h, w), bool), f"obj{colour[0]}")


def _background(h=120, w=160):
    img = np.full((h, w, 3), 200, np.uint8)
    wall = np.zeros((h, w), bool)
    wall[:, : w // 2] = True                    # a big labelled region the pastes will partly cover
    return Sample(img, [wall], np.zeros((h, w), bool), "bg")


def test_pasted_objects_are_inside_the_image_and_occlude_what_is_below():
    scenes = CopyPasteScenes([[_object_photo((250, 0, 0)), _object_photo((0, 250, 0))]], [[_background()]],
                             n=30, seed=1, max_objects=3)
    wall = _background().segments[0]
    pasted_somewhere = 0
    for k in range(len(scenes)):
        s = scenes[k]
        assert s.image.shape == (120, 160, 3)
        assert all(m.shape == (120, 160) and m.any() for m in s.segments)
        total = np.sum([m.astype(int) for m in s.segments], axis=0)
        assert total.max() <= 1                              # disjoint: occluded parts left the masks below
        # Every wall pixel now belongs to exactly one segment (the wall or the object pasted over it), or to
        # the ignore mask where the wall was so covered that its remains were dropped.
        assert ((total == 1) | s.ignore)[wall].all()
        # Pasted objects are in the image and carry the objects' colours (red / green, not the grey background).
        for m in s.segments:
            if not (m & ~wall).any() and (s.image[m] == 200).all(axis=1).mean() > 0.5:
                continue                                     # the (remaining) wall
            pasted_somewhere += 1
            colour = s.image[m].astype(int)
            assert ((colour[:, 0] > 200) | (colour[:, 1] > 200)).mean() > 0.8
    assert pasted_somewhere >= 30


def test_paste_object_returns_its_mask_and_changes_only_those_pixels():
    rng = np.random.default_rng(0)
    target = np.full((100, 100, 3), 7, np.uint8)
    before = target.copy()
    src = _object_photo((255, 255, 255))
    mask = paste_object(target, src.image, src.segments[0], rng)
    assert mask is not None and mask.any()
    changed = np.any(target != before, axis=2)
    # Only the object's pixels (and a 1-px feathered rim) change; the object's inside is the object's colour.
    rim = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert not (changed & ~rim).any()
    inner = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert (target[inner] == 255).all()


def test_scene_is_reproducible_and_needs_data():
    scenes = CopyPasteScenes([[_object_photo((250, 0, 0))]], [[_background()]], n=5, seed=3)
    a, b = scenes[2], scenes[2]
    assert np.array_equal(a.image, b.image) and len(a.segments) == len(b.segments)
    with pytest.raises(IndexError):
        scenes[5]
    with pytest.raises(DataError):
        CopyPasteScenes([[]], [[_background()]])


def test_trainer_builds_copy_paste_from_the_training_split_only(tmp_path):
    from train.trainer import _is_val, split_sources

    root = tmp_path / "objs"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(30):
        s = _object_photo((8 * i, 0, 0))
        cv2.imwrite(str(root / "images" / f"o{i}.png"), s.image)
        cv2.imwrite(str(root / "masks" / f"o{i}.png"), s.segments[0].astype(np.uint8) * 255)
    train, val = split_sources([f"copypaste:{root}:2:50"], 0.2)
    (scenes, weight, full), = train
    assert val == [] and weight == 2.0 and not full and len(scenes) == 50
    held_out = {f"o{i}" for i in range(30) if _is_val(f"o{i}", 0.2)}
    assert held_out                                          # the fixture does hold some files out
    used = {reader.reader.names[i] for reader in scenes.objects for i in reader.indices}
    assert used and not (used & held_out)
    assert scenes[0].segments
    # crowd=P asks for rows of alike copies; a malformed value is a clear error.
    (scenes, _, _), = split_sources([f"copypaste:{root}:2:50:crowd=0.3"], 0.2)[0]
    assert scenes.crowd_probability == 0.3 and len(scenes) == 50
    for bad in ("crowd=lots", "crowd=1.5"):
        with pytest.raises(ValueError, match="crowd="):
            split_sources([f"copypaste:{root}:2:50:{bad}"], 0.2)


def test_a_row_of_copies_gives_alike_touching_neighbours_each_its_own_segment():
    """Rows of one object pasted side by side: each copy a segment of its own, disjoint after occlusion, the
    same colour as the object, and next to another copy (touching or within a few pixels), as riders in a row
    are; every copy inside the image."""
    rng = np.random.default_rng(0)
    src = _object_photo((250, 0, 0))
    rows = 0
    for _ in range(20):
        image = np.full((120, 200, 3), 90, np.uint8)
        masks = paste_row(image, src.image, src.segments[0], rng, copies=3)
        assert 1 <= len(masks) <= 3
        for m in masks:
            assert m.shape == (120, 200) and m.sum() >= 64
        inner = cv2.erode(masks[-1].astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert (image[inner][:, 0] > 200).all()  # the copy in front shows the object's colour
        if len(masks) >= 2:
            rows += 1
            near = cv2.dilate(masks[0].astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
            assert (near & masks[1]).any()  # the second copy starts where the first one ends
    assert rows >= 15

    scenes = CopyPasteScenes([[_object_photo((250, 0, 0))]], [[_background()]], n=20, seed=2, max_objects=1,
                             crowd_probability=1.0, max_copies=3)
    plain = CopyPasteScenes([[_object_photo((250, 0, 0))]], [[_background()]], n=20, seed=2, max_objects=1)
    crowded = 0
    for k in range(len(scenes)):
        s = scenes[k]
        total = np.sum([m.astype(int) for m in s.segments], axis=0)
        assert total.max() <= 1  # disjoint: a later copy in front of an earlier one
        red = [m for m in s.segments if (s.image[m][:, 0].astype(int) > 200).mean() > 0.5]
        crowded += len(red) >= 2
        assert len(plain[k].segments) <= 2  # the wall and at most one pasted object
    assert crowded >= 15
