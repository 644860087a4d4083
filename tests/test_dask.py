"""Lazy, chunked restoration and synthesis with dask, on any scheduler."""

import copy

import dask.array as da
import numpy as np
import pytest
import torch

from napari_lowlight import enhance, estimate_alpha, estimate_difference, restore, synthesize_low_light


@pytest.fixture
def stack(rng):
    return (rng.random((2, 150, 130)) * 65535).astype(np.uint16)


def test_restore_is_lazy_and_equals_in_memory(tiny_model, stack):
    lazy = restore(da.from_array(stack, chunks=(1, 64, 64)), 1.2, model=tiny_model, tile_size=64)
    assert isinstance(lazy, da.Array) and lazy.dtype == np.uint16 and lazy.shape == stack.shape
    expected = restore(stack, 1.2, model=tiny_model)
    assert np.abs(lazy.compute().astype(int) - expected.astype(int)).max() <= 2e-3 * 65535


def test_data_range_on_a_lazy_stack_equals_in_memory(tiny_model, stack):
    twelve_bit = stack // 16
    lazy = restore(da.from_array(twelve_bit, chunks=(1, 64, 64)), 1.0, model=tiny_model, tile_size=64, data_range=4095)
    expected = restore(twelve_bit, 1.0, model=tiny_model, data_range=4095)
    assert np.abs(lazy.compute().astype(int) - expected.astype(int)).max() <= 2e-3 * 4095


def test_difference_and_enhance_are_lazy_too(tiny_model, rng):
    image = rng.random((90, 110)).astype(np.float32)
    lazy_image = da.from_array(image, chunks=50)
    restored, difference = restore(lazy_image, "auto", model=tiny_model, return_difference=True)
    np.testing.assert_allclose(difference.compute(), estimate_difference(image, model=tiny_model), atol=2e-3)
    cached = estimate_difference(lazy_image, model=tiny_model)
    np.testing.assert_allclose(
        enhance(lazy_image, cached, 0.8, model=tiny_model).compute(), enhance(image, cached.compute(), 0.8, model=tiny_model), atol=2e-3
    )
    np.testing.assert_allclose(restored.compute(), restore(image, "auto", model=tiny_model), atol=2e-3)


def test_rgb_chunks_split_inside_the_channel_axis(tiny_model, rng):
    image = rng.integers(0, 256, (70, 60, 4)).astype(np.uint8)
    lazy = restore(da.from_array(image, chunks=(32, 32, 2)), 1.0, model=tiny_model, channel_axis=-1)
    result = lazy.compute()
    np.testing.assert_array_equal(result[..., 3], image[..., 3])
    assert np.abs(result.astype(int) - restore(image, 1.0, model=tiny_model, channel_axis=-1).astype(int)).max() <= 1


def test_synthesize_is_lazy(stack):
    lazy = synthesize_low_light(da.from_array(stack, chunks=(1, 64, 64)), 1.0, 0.5)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), synthesize_low_light(stack, 1.0, 0.5))
    noisy = synthesize_low_light(da.from_array(stack, chunks=(1, 64, 64)), 1.0, 0.5, noise_sigma=0.01, seed=3)
    np.testing.assert_array_equal(noisy.compute(), noisy.compute())


def test_bad_settings_fail_before_computing(stack):
    with pytest.raises(ValueError, match="noise"):
        synthesize_low_light(da.from_array(stack), 1.0, 0.5, noise="speckle")


def test_distributed_cluster_of_two_processes(tiny_model, stack):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            lazy = restore(da.from_array(stack, chunks=(1, 75, 65)), 1.0, model=tiny_model, device="cpu")
            result = client.compute(lazy).result()
    expected = restore(stack, 1.0, model=tiny_model)
    assert np.abs(result.astype(int) - expected.astype(int)).max() <= 2e-3 * 65535


def test_a_lazy_image_is_read_once_for_its_range_and_context(tiny_model, rng):
    """A live alpha slider calls enhance on the same lazy layer again and again: no re-reads."""
    reads = []

    def counted(block):
        reads.append(block.shape)
        return block

    image = rng.random((2, 64, 64)).astype(np.float32) * 1.5  # outside [0, 1]: its range must be computed
    lazy = da.from_array(image, chunks=(1, 32, 32)).map_blocks(counted, dtype=np.float32)
    with pytest.warns(UserWarning, match="outside"):
        first = estimate_alpha(lazy, model=tiny_model, photograph=True)
    assert reads
    reads.clear()
    with pytest.warns(UserWarning, match="outside"):
        assert estimate_alpha(lazy, model=tiny_model, photograph=True) == first
    assert not reads


def test_a_cpu_model_goes_to_dask_workers_as_it_is(tiny_model):
    from napari_lowlight.inference import _on_cpu

    assert _on_cpu(tiny_model) is tiny_model


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_gpu_model_goes_to_dask_workers_as_a_cpu_copy(tiny_model, stack):
    # Workers without a GPU could not unpickle a model that lives on one.
    from napari_lowlight.inference import _on_cpu

    gpu_model = copy.deepcopy(tiny_model).cuda()
    shipped = _on_cpu(gpu_model)
    assert all(t.device.type == "cpu" for t in shipped.state_dict().values())
    assert all(t.device.type == "cuda" for t in gpu_model.state_dict().values())
    lazy = restore(da.from_array(stack, chunks=(1, 75, 65)), 1.0, model=gpu_model)
    expected = restore(stack, 1.0, model=tiny_model, device="cpu")
    assert np.abs(lazy.compute().astype(int) - expected.astype(int)).max() <= 0.02 * 65535  # bfloat16 on the GPU


def test_a_lazy_tiff_travels_as_its_absolute_path_and_refuses_a_changed_file(tmp_path, stack, monkeypatch):
    # What a cluster's worker does: unpickle the graph elsewhere, then read the file.
    import pickle

    import cloudpickle
    import tifffile

    from napari_lowlight.io import open_lazy

    tifffile.imwrite(tmp_path / "stack.tif", stack)
    monkeypatch.chdir(tmp_path)
    shipped = cloudpickle.dumps(open_lazy("stack.tif"))  # a relative path, as a user types it
    monkeypatch.chdir("/")
    np.testing.assert_array_equal(pickle.loads(shipped).compute(), stack)
    tifffile.imwrite(tmp_path / "stack.tif", stack[:1])
    with pytest.raises(ValueError, match="changed after it was opened"):
        pickle.loads(shipped).compute()


def test_writing_a_zarr_store_over_another_replaces_it_whole(tmp_path, stack):
    from napari_lowlight.io import write_lazy

    path = tmp_path / "out.zarr"
    write_lazy(path, da.from_array(stack, chunks=(1, 75, 65)))
    write_lazy(path, da.from_array(stack[:1] // 2, chunks=(1, 75, 65)))
    np.testing.assert_array_equal(da.from_zarr(str(path)).compute(), stack[:1] // 2)
    assert [p.name for p in tmp_path.iterdir()] == ["out.zarr"]  # no temporary left behind
