"""The decoded-uint8 memmap cache: a hit decodes nothing; a changed source file rebuilds it."""

from __future__ import annotations

import os
import shutil

import cv2
import numpy as np
import pytest

import multimnist.data.cache as cache_mod
from multimnist.data.cache import cached_images
from multimnist.data.dacon import DaconLayout, load_split
from multimnist.data.dataset import DaconImages


@pytest.fixture
def root(tmp_path, synth_root):
    copy = tmp_path / "root"
    shutil.copytree(synth_root, copy)
    return copy


def test_cache_matches_decoding_and_hit_decodes_nothing(root, tmp_path, monkeypatch):
    split = load_split(DaconLayout(root), "train")
    images = cached_images(split, tmp_path / "cache", img_size=64, progress=False)
    assert images.shape == (120, 64, 64) and images.dtype == np.uint8
    direct = DaconImages(split, img_size=64)
    cached = DaconImages(split, img_size=64, images=images)
    for i in (0, 57, 119):
        assert np.array_equal(cached[i][0].numpy(), direct[i][0].numpy())

    def no_decode(path):
        raise AssertionError(f"decoded {path} on a cache hit")

    monkeypatch.setattr(cache_mod, "decode_gray", no_decode)
    again = cached_images(split, tmp_path / "cache", img_size=64, progress=False)
    assert np.array_equal(again, images)


def test_changed_source_rebuilds_and_removes_stale(root, tmp_path):
    cache = tmp_path / "cache"
    split = load_split(DaconLayout(root), "train")
    before = np.array(cached_images(split, cache, progress=False))
    other_size = cached_images(split, cache, img_size=32, progress=False)
    assert len(list(cache.glob("train-*.npy"))) == 2  # other preprocessing of the same files is kept

    path = split.paths[4]
    cv2.imwrite(str(path), np.full((256, 256), 7, np.uint8))
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a changed file on a coarse-mtime disk
    after = cached_images(split, cache, progress=False)
    assert (after[4] == 7).all() and np.array_equal(after[3], before[3])
    assert len(list(cache.glob("train-*.npy"))) == 1  # both caches of the old files are gone
    assert other_size.shape == (120, 32, 32)  # an open memmap stays readable after its file is removed


def test_denoise_is_part_of_the_key(root, tmp_path):
    split = load_split(DaconLayout(root), "train")
    raw = cached_images(split, tmp_path / "c", progress=False)
    clean = cached_images(split, tmp_path / "c", denoise=True, progress=False)
    assert np.array_equal(clean[0] == 255, raw[0] == 255) and set(np.unique(clean[0])) <= {0, 255}


def test_batched_reads_equal_item_reads(root, tmp_path):
    from torch.utils.data import DataLoader

    split = load_split(DaconLayout(root), "train")
    images = cached_images(split, tmp_path / "cache", img_size=32, denoise=True, progress=False)
    ds = DaconImages(split, img_size=32, denoise=True, images=images, rows=[9, 2, 77, 40])
    x, y, index = next(iter(DataLoader(ds, batch_size=4)))  # goes through __getitems__
    for k in range(4):
        xi, yi, ii = ds[k]
        assert np.array_equal(x[k].numpy(), xi.numpy()) and np.array_equal(y[k].numpy(), yi.numpy())
        assert index[k] == ii
    assert index.tolist() == [9, 2, 77, 40]
