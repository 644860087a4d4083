import copy
import dataclasses

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import data

from napari_lowlight import estimate_alpha, load_model, new_model, restore, train
from napari_lowlight.network import CONTEXT_QUANTILES
from napari_lowlight.noise import fit_noise, wiener_refine
from napari_lowlight import inference
from napari_lowlight.inference import GUIDE_NOISE_KEY
from napari_lowlight.training import (
    BLIND_SPOT_RADIUS,
    GUIDE_NOISE_CHOICES,
    TrainingConfig,
    WeightAverage,
    _blind_spot_batch,
    _cell_pixels,
    _context_batch,
    _neighbour_batch,
    _neighbour_loss,
    _NeighbourBatch,
    _PatchSource,
    _synthetic_batch,
    calibrated_guide_noise,
)
from napari_lowlight.weights import load_weights, save_model


def _run(generator):
    """Exhaust a training generator; return its events and the returned model."""
    events = []
    try:
        while True:
            events.append(next(generator))
    except StopIteration as finished:
        return events, finished.value


def _tiny(**kwargs):
    return dict(model=new_model(width=4, seed=0), batch_size=8, patch_size=16, device="cpu", validate_every=0) | kwargs


def test_a_few_steps_lower_the_loss(smooth_image):
    events, model = _run(train([smooth_image], steps=60, lr=3e-3, validate_every=20, **{k: v for k, v in _tiny().items() if k != "validate_every"}))
    assert len(events) == 60 and events[-1].step == 60
    assert np.mean([e.loss for e in events[-10:]]) < 0.7 * np.mean([e.loss for e in events[:10]])
    psnrs = [e.validation_psnr for e in events if e.validation_psnr is not None]
    assert psnrs[-1] > psnrs[0]
    assert not model.training
    assert events[0].images_per_second > 0 and events[0].learning_rate == 3e-3


def _trained_weights(extra):
    """The trained (not averaged) weights a checkpoint carries for resuming."""
    return {name.removeprefix("trained."): t for name, t in extra.items() if name.startswith("trained.")}


def _assert_same_weights(first: dict, second: dict):
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=0, atol=0)


def test_stopping_between_steps_keeps_the_averaged_model(smooth_image, tmp_path):
    checkpoint = tmp_path / "run.safetensors"
    run = train([smooth_image], steps=1000, checkpoint=checkpoint, checkpoint_every=3, **_tiny())
    for event in run:
        if event.step == 3:
            break
    run.close()
    assert event.step == 3
    assert isinstance(event.model, torch.nn.Module)
    assert not event.model.training  # handed back in eval mode
    averaged, _, extra = load_weights(checkpoint)
    _assert_same_weights(event.model.state_dict(), averaged.state_dict())
    assert any(not torch.equal(t, event.model.state_dict()[n]) for n, t in _trained_weights(extra).items())


def test_same_seed_same_weights(smooth_image):
    first = _run(train([smooth_image], steps=4, seed=5, **_tiny()))[1]
    second = _run(train([smooth_image], steps=4, seed=5, **_tiny()))[1]
    other = _run(train([smooth_image], steps=4, seed=6, **_tiny()))[1]
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert any(not torch.equal(a, b) for a, b in zip(first.state_dict().values(), other.state_dict().values()))


def test_resuming_from_a_checkpoint_continues_exactly(smooth_image, tmp_path):
    straight = _run(train([smooth_image], steps=6, seed=2, **_tiny()))[1]
    checkpoint = tmp_path / "run.safetensors"
    interrupted = train([smooth_image], steps=6, seed=2, checkpoint=checkpoint, checkpoint_every=3, **_tiny())
    for event in interrupted:
        if event.step == 3:
            break
    interrupted.close()
    _, _, extra = load_weights(checkpoint)
    assert int(extra["step"][0]) == 3
    resumed = _run(train([smooth_image], steps=6, seed=2, checkpoint=checkpoint, **_tiny(model=None)))[1]
    _assert_same_weights(straight.state_dict(), resumed.state_dict())
    # The finished checkpoint restores like the weights the run handed back (the average).
    _assert_same_weights(load_weights(checkpoint)[0].state_dict(), resumed.state_dict())


def test_a_checkpoint_in_a_missing_folder_is_written_there(smooth_image, tmp_path):
    checkpoint = tmp_path / "runs" / "first" / "run.safetensors"
    _run(train([smooth_image], steps=2, checkpoint=checkpoint, checkpoint_every=1, **_tiny()))
    assert int(load_weights(checkpoint)[2]["step"][0]) == 2


def test_resuming_a_checkpoint_without_an_average_warns_and_continues(smooth_image, tmp_path):
    checkpoint = tmp_path / "run.safetensors"
    _run(train([smooth_image], steps=3, seed=2, checkpoint=checkpoint, **_tiny()))
    averaged, metadata, extra = load_weights(checkpoint)
    # The layout of earlier versions: the trained weights as the model, no average.
    averaged.load_state_dict(_trained_weights(extra))
    older = {name: t for name, t in extra.items() if name.startswith("optimizer.") or name == "step"}
    save_model(averaged, checkpoint, training=metadata["training"], extra_tensors=older)
    with pytest.warns(UserWarning, match="no weight average") as caught:
        events, _ = _run(train([smooth_image], steps=5, seed=2, checkpoint=checkpoint, **_tiny(model=None)))
    assert [e.step for e in events] == [4, 5]
    assert {r.filename for r in caught if "no weight average" in str(r.message)} == {__file__}


def test_weight_average_ramps_up_and_tracks_batchnorm():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    start = {name: value.clone() for name, value in model.state_dict().items()}
    average = WeightAverage(model, decay=0.99)
    capped = WeightAverage(model, decay=0.05)

    def shift_model(by):
        with torch.no_grad():
            for value in model.state_dict().values():
                value.add_(by)

    shift_model(1)
    average.update(model)  # decay min(0.99, 1/10): 0.1 of the old average
    capped.update(model)  # decay min(0.05, 1/10)
    shift_model(1)
    average.update(model)  # decay min(0.99, 2/11)
    for name, value in average.model.state_dict().items():
        if value.is_floating_point():
            first = 0.1 * start[name] + 0.9 * (start[name] + 1)
            torch.testing.assert_close(value, 2 / 11 * first + 9 / 11 * (start[name] + 2))
            torch.testing.assert_close(capped.model.state_dict()[name], 0.05 * start[name] + 0.95 * (start[name] + 1))
        else:  # BatchNorm's step counter follows the model
            assert torch.equal(value, start[name] + 2)
    assert not any(p.requires_grad for p in average.model.parameters())


def test_handed_back_weights_are_the_average_unless_turned_off(smooth_image, tmp_path):
    for decay in (0.999, 0.0):
        checkpoint = tmp_path / f"decay-{decay}.safetensors"
        model = _run(train([smooth_image], steps=12, seed=1, average_decay=decay, checkpoint=checkpoint, **_tiny()))[1]
        trained = _trained_weights(load_weights(checkpoint)[2])
        if decay == 0:
            _assert_same_weights(model.state_dict(), trained)
        else:
            assert any(not torch.equal(t, model.state_dict()[name]) for name, t in trained.items())


def _batchnorm_statistics(model):
    return {name: value.clone() for name, value in model.state_dict().items() if "running_" in name}


def _record_batchnorm_modes(model):
    """A list that fills with ``training`` of every BatchNorm call of ``model``."""
    modes = []
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.register_forward_pre_hook(lambda norm, _: modes.append(norm.training))
    return modes


def test_fine_tuning_keeps_learned_batchnorm_statistics_unless_told_otherwise(smooth_image):
    trained = _run(train([smooth_image], steps=3, **_tiny()))[1]
    assert trained.training_config["freeze_batchnorm"] is False  # a new model learns its statistics
    learned = _batchnorm_statistics(trained)
    fresh = _batchnorm_statistics(new_model(width=4, seed=0))
    assert any(not torch.equal(value, fresh[name]) for name, value in learned.items())

    model = copy.deepcopy(trained)
    modes = _record_batchnorm_modes(model)
    fine_tuned = _run(train([smooth_image**2], steps=3, seed=7, **_tiny(model=model)))[1]
    assert fine_tuned.training_config["freeze_batchnorm"] is True
    assert modes and not any(modes)  # normalised by the stored statistics, not by each batch
    _assert_same_weights(_batchnorm_statistics(fine_tuned), learned)
    weights = {name: value for name, value in fine_tuned.state_dict().items() if name.endswith("weight")}
    assert any(not torch.equal(value, trained.state_dict()[name]) for name, value in weights.items())

    model = copy.deepcopy(trained)
    modes = _record_batchnorm_modes(model)
    adapted = _run(train([smooth_image**2], steps=3, seed=7, freeze_batchnorm=False, **_tiny(model=model)))[1]
    assert adapted.training_config["freeze_batchnorm"] is False
    assert any(modes)
    assert any(not torch.equal(value, learned[name]) for name, value in _batchnorm_statistics(adapted).items())


def test_a_resumed_fine_tuning_keeps_its_batchnorm_choice(smooth_image, tmp_path):
    trained = _run(train([smooth_image], steps=3, **_tiny()))[1]
    options = dict(steps=6, seed=4, batch_size=8, patch_size=16, device="cpu", validate_every=0)
    straight = _run(train([smooth_image], model=copy.deepcopy(trained), **options))[1]
    checkpoint = tmp_path / "fine-tune.safetensors"
    run = train([smooth_image], model=copy.deepcopy(trained), checkpoint=checkpoint, checkpoint_every=3, **options)
    for event in run:
        if event.step == 3:
            break
    run.close()
    # Resumed without the starting model (as `napari-lowlight train` without --from would).
    resumed = _run(train([smooth_image], checkpoint=checkpoint, **options))[1]
    assert resumed.training_config["freeze_batchnorm"] is True
    _assert_same_weights(resumed.state_dict(), straight.state_dict())


def test_paired_mode(smooth_image):
    low = (smooth_image**2).astype(np.float32)
    events, model = _run(train(pairs=[(low, smooth_image)], steps=30, lr=3e-3, **_tiny()))
    assert np.mean([e.loss for e in events[-5:]]) < np.mean([e.loss for e in events[:5]])


def test_colour_and_stacks_are_accepted(rng):
    colour = rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)
    stack = rng.random((2, 30, 30)).astype(np.float32)
    events, _ = _run(train([colour, stack], steps=2, channel_axis=[-1, None], **_tiny()))
    assert len(events) == 2


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"steps": 0}, "steps"),
        ({"lr": -1.0}, "lr"),
        ({"alpha_range": (0, 2)}, r"alpha_range must be \(low, high\) with 0 < low"),
        ({"noise_sigma_range": (0.02, 0.01)}, r"noise_sigma_range must be \(low, high\) with 0 <= low"),
        ({"noise": "pink"}, "noise"),
        ({"seed": -1}, "seed"),
        ({"average_decay": 1.0}, "average_decay"),
        ({"freeze_batchnorm": "yes"}, "freeze_batchnorm"),
        ({"denoise_fraction": 1.0}, "denoise_fraction"),
        ({"dim_denoise_fraction": -0.1}, "dim_denoise_fraction"),
        ({"alpha_batch_size": -1}, "alpha_batch_size"),
        ({"exposure_fraction": 1.0}, "exposure_fraction"),
        ({"exposure_kept_range": (0.5, 1.0)}, r"exposure_kept_range must be \(low, high\) with 0 < low"),
        ({"black_level_fraction": 1.5}, "black_level_fraction"),
        ({"black_level_range": (0.1, 1.0)}, r"black_level_range must be \(low, high\) with 0 <= low"),
        ({"shadow_crush_fraction": 1.0}, "shadow_crush_fraction"),
        ({"shadow_crush_range": (0.3, 0.2)}, r"shadow_crush_range must be \(low, high\) with 0 <= low"),
        ({"strength_fraction": -0.1}, "strength_fraction"),
        ({"strength_range": (2.0, 1.0)}, r"strength_range must be \(low, high\) with 0 <= low"),
        ({"noise_free_fraction": 1.0}, "noise_free_fraction"),
    ],
)
def test_bad_settings_are_named(smooth_image, kwargs, word):
    arguments = {"steps": 2} | kwargs
    with pytest.raises(ValueError, match=word):
        train([smooth_image], **arguments)


def test_a_diverging_run_stops_with_an_error_naming_the_learning_rate(smooth_image):
    with pytest.raises(ValueError, match=r"diverged at step \d+ .*lower the learning rate \(lr=1e\+30\)"):
        _run(train([smooth_image], steps=20, lr=1e30, **_tiny()))


def test_mismatched_pairs_are_refused(smooth_image):
    with pytest.raises(ValueError, match="pairs"):
        train(pairs=[(smooth_image, smooth_image[:10])], steps=2)
    with pytest.raises(ValueError, match="denoise_fraction"):
        train(pairs=[(smooth_image, smooth_image)], steps=2, denoise_fraction=0.2)
    with pytest.raises(ValueError, match="dim_images"):
        train(pairs=[(smooth_image, smooth_image)], dim_images=[smooth_image], steps=2)
    with pytest.raises(ValueError, match="alpha_batch_size"):
        train(pairs=[(smooth_image, smooth_image)], steps=2, alpha_batch_size=8)


def test_undarkened_samples_are_the_clean_patches_with_only_their_noise(smooth_image):
    source = _PatchSource([smooth_image], 16, None, "images")
    config = TrainingConfig(steps=1, denoise_fraction=0.5, noise=None, quantize_fraction=0.0)
    low, clean, _, alpha, *_ = _synthetic_batch(source, config, step=0, count=64)
    undarkened = alpha == 0
    assert 10 < int(undarkened.sum()) < 54
    torch.testing.assert_close(low[undarkened], clean[undarkened], rtol=0, atol=0)
    assert (low[~undarkened].mean(dim=(1, 2, 3)) < clean[~undarkened].mean(dim=(1, 2, 3))).all()


def test_noise_free_samples_are_recorded_without_sensor_noise_and_the_others_as_before(smooth_image):
    source = _PatchSource([smooth_image], 16, None, "images")
    config = TrainingConfig(
        steps=1, denoise_fraction=0.5, noise="gaussian", noise_sigma_range=(0.05, 0.08), quantize_fraction=0.0
    )
    plain = _synthetic_batch(source, config, step=0, count=128)
    batch = _synthetic_batch(source, dataclasses.replace(config, noise_free_fraction=0.5), step=0, count=128)
    noise_free = (batch.low != plain.low).flatten(1).any(dim=1)  # the samples that lost their noise
    assert 40 < int(noise_free.sum()) < 88
    undarkened = noise_free & (batch.alpha == 0)
    assert undarkened.any()
    torch.testing.assert_close(batch.low[undarkened], batch.target[undarkened], rtol=0, atol=0)
    torch.testing.assert_close(batch.low[~noise_free], plain.low[~noise_free], rtol=0, atol=0)
    torch.testing.assert_close(batch.target, plain.target, rtol=0, atol=0)
    # Shot noise is left out as well.
    shot = dataclasses.replace(config, noise="poisson-gaussian", photons_range=(5.0, 10.0), noise_free_fraction=0.5)
    batch = _synthetic_batch(source, shot, step=0, count=128)
    undarkened = batch.alpha == 0
    clean = (batch.low == batch.target).flatten(1).all(dim=1)[undarkened]
    assert 0.25 < clean.float().mean() < 0.75


def test_black_levels_lift_undarkened_samples_and_their_targets_alike(smooth_image):
    source = _PatchSource([smooth_image], 16, None, "images")
    config = TrainingConfig(
        steps=1, denoise_fraction=0.5, black_level_fraction=0.5, black_level_range=(0.05, 0.1), noise=None, quantize_fraction=0.0
    )
    batch = _synthetic_batch(source, config, step=0, count=128)
    plain = _synthetic_batch(source, dataclasses.replace(config, black_level_fraction=0.0), step=0, count=128)
    changed = (batch.target != plain.target).flatten(1).any(dim=1)
    assert 10 < int(changed.sum()) < 54
    assert (batch.alpha[changed] == 0).all()  # darkened samples keep their black
    # The target is b + (1 - b) * I with one b per sample, and the input is that target (no noise here).
    black = ((batch.target - plain.target) / (1 - plain.target)).flatten(1).nanmedian(dim=1).values[changed]
    assert ((black >= 0.05) & (black <= 0.1)).all()
    lifted = black.view(-1, 1, 1, 1) + (1 - black.view(-1, 1, 1, 1)) * plain.target[changed]
    torch.testing.assert_close(batch.target[changed], lifted)
    torch.testing.assert_close(batch.low[changed], batch.target[changed], rtol=0, atol=0)
    # The context sees the same lifted frame: its darkest quantile rises with the black level.
    assert (batch.context[changed, 0] > plain.context[changed, 0]).all()


def test_crushed_shadows_are_true_blacks_in_the_target_the_input_and_the_context(smooth_image):
    image = np.clip((smooth_image - 0.15) / 0.8, 0.02, 1)  # dark shadows, but no black of its own
    source = _PatchSource([image], 16, None, "images")
    config = TrainingConfig(
        steps=1, shadow_crush_fraction=0.5, shadow_crush_range=(0.1, 0.25), noise=None, quantize_fraction=0.0
    )
    batch = _synthetic_batch(source, config, step=0, count=128)
    plain = _synthetic_batch(source, dataclasses.replace(config, shadow_crush_fraction=0.0), step=0, count=128)
    changed = (batch.target != plain.target).flatten(1).any(dim=1)
    assert 40 < int(changed.sum()) < 88
    # The target is max(I - t, 0) / (1 - t) with one t per sample.
    target, before = batch.target[changed], plain.target[changed]
    threshold = torch.where(target > 0, (before - target) / (1 - target), torch.nan).flatten(1).nanmedian(dim=1).values
    assert ((threshold >= 0.1) & (threshold <= 0.25)).all()
    threshold = threshold.view(-1, 1, 1, 1)
    torch.testing.assert_close(target, ((before - threshold) / (1 - threshold)).clamp(min=0))
    black = target == 0
    assert black.any()
    # Eq. 5 and the exposure samples keep a black truth black, and its difference map is 0 there.
    assert (batch.low[changed][black] == 0).all() and (batch.difference[changed][black] == 0).all()
    # The context's pixels are crushed alike: its darkest quantile falls.
    assert (batch.context[changed, 0] <= plain.context[changed, 0]).all()
    assert (batch.context[changed, 0] < plain.context[changed, 0]).any()


def test_exposure_samples_are_the_clean_patches_scaled_down_with_saturation_kept(smooth_image):
    image = smooth_image * 0.9
    image[:8] = 1.0  # a saturated light source
    source = _PatchSource([image], 16, None, "images")
    config = TrainingConfig(steps=1, exposure_fraction=0.5, noise=None, quantize_fraction=0.0)
    low, clean, difference, alpha, *_ = _synthetic_batch(source, config, step=0, count=64)
    # Exposure samples are at alpha 1 (Eq. 5's draws never are exactly).
    exposure = alpha == 1
    assert 10 < int(exposure.sum()) < 54
    low, clean, difference = low[exposure], clean[exposure], difference[exposure]
    saturated = clean == 1
    assert saturated.any() and (low[saturated] == 1).all() and (difference[saturated] == 0).all()
    # Below saturation: low = kept * I with one kept per sample, and D = (1 - kept) * I, so low + D = I.
    kept = torch.where(saturated, torch.nan, low / clean)
    per_sample = kept.nanmean(dim=(1, 2, 3))
    assert ((per_sample >= 0.03) & (per_sample <= 0.5)).all()
    per_sample = per_sample.view(-1, 1, 1, 1)
    torch.testing.assert_close(torch.where(saturated, per_sample, kept), per_sample.expand_as(kept))
    torch.testing.assert_close(low + difference, clean)


def test_strength_samples_target_the_image_restored_at_their_strength(smooth_image):
    source = _PatchSource([smooth_image], 16, None, "images")
    config = TrainingConfig(steps=1, denoise_fraction=0.3, exposure_fraction=0.35, noise=None, quantize_fraction=0.0)
    plain = _synthetic_batch(source, config, step=0, count=128)
    batch = _synthetic_batch(source, dataclasses.replace(config, strength_fraction=0.5), step=0, count=128)
    assert plain.strength is None and plain.network_alpha is plain.alpha
    # The same samples, their true alpha and D: only the strength and the target move.
    for name in ("low", "difference", "alpha", "context"):
        torch.testing.assert_close(getattr(batch, name), getattr(plain, name), rtol=0, atol=0)
    off = batch.strength != batch.alpha
    assert 20 < int(off.sum()) < 70
    assert (batch.alpha[off] > 0).all()  # undarkened samples have no D to brighten by
    assert ((batch.strength >= 0) & (batch.strength <= 3)).all()
    torch.testing.assert_close(batch.target[~off], plain.target[~off], rtol=0, atol=0)
    shift = (batch.strength - batch.alpha)[off].view(-1, 1, 1, 1)
    restored_at_strength = (plain.target[off] + shift * plain.difference[off]).clamp(0, 1)
    torch.testing.assert_close(batch.target[off], restored_at_strength)
    # Brighter above the true alpha, darker below: the strength a user sets is what the target follows.
    brighter = batch.target[off].mean(dim=(1, 2, 3)) - plain.target[off].mean(dim=(1, 2, 3))
    assert ((brighter > 0) == (shift.flatten() > 0)).all()


def test_dim_images_stay_undarkened_in_their_own_share(smooth_image):
    # Two images of different brightness tell the samples' sources apart.
    bright, dim = smooth_image, smooth_image * 0.25
    source = _PatchSource([bright, dim], 16, None, "images", dim=[False, True])
    config = TrainingConfig(steps=1, denoise_fraction=0.0, dim_denoise_fraction=0.9, noise=None, quantize_fraction=0.0)
    batch = _synthetic_batch(source, config, step=0, count=256)
    clean, alpha = batch.target, batch.alpha
    from_dim = clean.amax(dim=(1, 2, 3)) <= 0.25
    assert 50 < int(from_dim.sum()) < 206
    assert (alpha[~from_dim] > 0).all()
    assert 0.75 < float((alpha[from_dim] == 0).float().mean()) < 1.0


def test_dim_images_are_trained_beside_the_images(smooth_image):
    # A folder of photographs plus scenes: both feed the run, each scene with its own plane.
    stack = np.stack([smooth_image, smooth_image[::-1]])
    source = _PatchSource([smooth_image, stack], 16, None, "images", dim=[False, True])
    assert source.dim.tolist() == [False, True, True]
    run = train([smooth_image], dim_images=[stack], steps=2, dim_denoise_fraction=0.5, **_tiny())
    _, model = _run(run)
    assert model.training_config["dim_denoise_fraction"] == 0.5


def test_more_contexts_train_only_the_alpha_estimator(smooth_image):
    # The further contexts have their own random stream and feed only the estimator's loss:
    # both nets end bit for bit as without them.
    trained = {}
    for more in (0, 16):
        model = new_model(width=4, seed=0)
        _run(train([smooth_image], steps=3, alpha_batch_size=more, average_decay=0.0, **_tiny(model=model)))
        trained[more] = model.state_dict()
    nets = [name for name in trained[0] if not name.startswith("alpha_estimator.")]
    assert nets and all(torch.equal(trained[0][name], trained[16][name]) for name in nets)
    estimator = [name for name in trained[0] if name.startswith("alpha_estimator.")]
    assert any(not torch.equal(trained[0][name], trained[16][name]) for name in estimator)


def test_further_contexts_follow_the_images_undarkened_shares(smooth_image):
    source = _PatchSource([smooth_image, smooth_image * 0.25], 16, None, "images", dim=[False, True])
    config = TrainingConfig(steps=1, denoise_fraction=0.0, dim_denoise_fraction=0.9, noise=None, quantize_fraction=0.0)
    alpha, context = _context_batch(source, config, step=0, count=200)
    assert alpha.shape == (200,) and context.shape == (200, len(CONTEXT_QUANTILES))
    undarkened = alpha == 0
    assert 40 < int(undarkened.sum()) < 120  # about 0.9 of the dim image's half
    # Undarkened contexts come from the dim image: their top quantile is at most its 0.25.
    assert (context[undarkened, -1] <= 0.25**0.5 + 1e-6).all()


def test_undarkened_samples_do_not_train_estimate_net(smooth_image):
    # At alpha 0 the output does not depend on D and no D is supervised: Estimate-Net,
    # which never sees alpha, must not learn that images hold no darkening.
    model = new_model(width=4, seed=0)
    before = copy.deepcopy(model.state_dict())
    run = train([smooth_image], steps=3, denoise_fraction=0.9999, weight_decay=0.0, average_decay=0.0, **_tiny(model=model))
    _run(run)
    after = model.state_dict()
    learned = [name for name in before if "running" not in name and "num_batches" not in name]
    for name in learned:
        if name.startswith("estimate."):
            torch.testing.assert_close(after[name], before[name], rtol=0, atol=0)
    assert any(not torch.equal(after[name], before[name]) for name in learned if name.startswith("enhance."))


def test_a_new_model_trained_with_undarkened_samples_can_estimate_alpha_zero(smooth_image):
    small = dict(steps=1, batch_size=4, patch_size=16, device="cpu", validate_every=0)
    _, paper = _run(train([smooth_image], **small))
    _, denoiser = _run(train([smooth_image], denoise_fraction=0.2, **small))
    assert paper.config.alpha_min == 0.5 and denoiser.config.alpha_min == 0.0
    with torch.no_grad():
        for model in (paper, denoiser):
            model.alpha_estimator.mlp[-1].bias.fill_(-50.0)  # the estimator's lowest answer
    assert estimate_alpha(smooth_image, model=paper, photograph=True) == pytest.approx(0.5)
    assert estimate_alpha(smooth_image, model=denoiser, photograph=True) == pytest.approx(0.0, abs=1e-6)


def test_fine_tuning_keeps_the_shares_that_define_alpha_of_the_run_that_trained_the_model(smooth_image, tmp_path):
    small = dict(steps=1, batch_size=4, patch_size=16, device="cpu", validate_every=0)
    _, trained = _run(train([smooth_image], denoise_fraction=0.3, strength_fraction=0.4, **small))
    loaded = load_model(save_model(trained, tmp_path / "d.safetensors", training=trained.training_config))
    _, tuned = _run(train([smooth_image], model=copy.deepcopy(loaded), **small))
    assert (tuned.training_config["denoise_fraction"], tuned.training_config["strength_fraction"]) == (0.3, 0.4)
    _, paired = _run(train(pairs=[(smooth_image**2, smooth_image)], model=copy.deepcopy(loaded), **small))
    # Real pairs: nothing to leave undarkened or to restore at another strength.
    assert (paired.training_config["denoise_fraction"], paired.training_config["strength_fraction"]) == (0.0, 0.0)
    _, told = _run(train([smooth_image], model=loaded, denoise_fraction=0.0, strength_fraction=0.0, **small))
    assert (told.training_config["denoise_fraction"], told.training_config["strength_fraction"]) == (0.0, 0.0)
    _, fresh = _run(train([smooth_image], model=new_model(width=4), **small))
    assert (fresh.training_config["denoise_fraction"], fresh.training_config["strength_fraction"]) == (0.0, 0.0)


# Self-supervised training on noisy frames alone (train(noisy=...), blind-spot masking).


def _tiny_denoiser(**kwargs):
    """``_tiny()`` with a model whose automatic alpha can answer 0, as noisy frames teach it."""
    return _tiny(model=new_model(width=4, seed=0, alpha_min=0.0)) | kwargs


@pytest.fixture
def noise_frames(rng):
    """Pure noise: nothing in a pixel's neighbours tells its value, only the mean."""
    return [np.clip(rng.normal(0.5, 0.1, (64, 64)), 0, 1).astype(np.float32) for _ in range(4)]


def test_blind_spots_never_show_the_input_the_value_they_are_scored_on():
    side, patch = 96, 32
    # Every pixel value occurs once, so a value seen in the input tells which pixel it came from.
    frame = (np.arange(side * side, dtype=np.float64).reshape(side, side) + 1) / (side * side + 1)
    config = TrainingConfig(steps=1, self_supervised=True, mask_fraction=0.04)
    source = _PatchSource([frame], patch + 2 * BLIND_SPOT_RADIUS, None, "noisy")
    for step in range(5):
        batch = _blind_spot_batch(source, config, step, 8)
        assert batch.low.shape == batch.target.shape == batch.mask.shape == (8, 1, patch, patch)
        assert torch.all(batch.alpha == 0) and batch.difference is None
        for low, target, mask in zip(batch.low, batch.target, batch.mask, strict=True):
            scored = target[mask].numpy()
            assert 0.03 < mask.float().mean() < 0.05
            # Each blind spot's value appears nowhere in the input: not in place, not as another's replacement.
            assert not np.isin(scored, low.numpy()).any()
            # Its replacement is another pixel's of its 5x5 neighbourhood, and every other pixel is as it was.
            where = {value: divmod(index, side) for index, value in enumerate(source.images[0].ravel())}
            for own, replacement in zip(scored, low[mask].numpy(), strict=True):
                (y, x), (ry, rx) = where[own], where[replacement]
                assert 1 <= max(abs(y - ry), abs(x - rx)) <= BLIND_SPOT_RADIUS
            torch.testing.assert_close(low[~mask], target[~mask], rtol=0, atol=0)


def test_every_patch_has_a_blind_spot_however_small_the_fraction(smooth_image):
    config = TrainingConfig(steps=1, self_supervised=True, mask_fraction=1e-6)
    source = _PatchSource([smooth_image], 16 + 2 * BLIND_SPOT_RADIUS, None, "noisy")
    assert (_blind_spot_batch(source, config, 0, 16).mask.sum(dim=(1, 2, 3)) >= 1).all()


def test_neighbour_pairs_are_two_adjacent_pixels_of_each_cell():
    side, patch = 40, 16
    # Every pixel value occurs once, so a value tells where in the patch it lies.
    frame = (np.arange(side * side, dtype=np.float64).reshape(side, side) + 1) / (side * side + 1)
    batch = _neighbour_batch(_PatchSource([frame], patch, None, "noisy"), TrainingConfig(steps=1), 0, 8)
    assert batch.noisy.shape == (8, 1, patch, patch) and batch.first.shape == batch.second.shape == (8, 1, 8, 8)
    first, second = _cell_pixels(batch.noisy, batch.first), _cell_pixels(batch.noisy, batch.second)
    orientations = set()
    for noisy, firsts, seconds in zip(batch.noisy, first, second, strict=True):
        where = {value: divmod(index, patch) for index, value in enumerate(noisy.numpy().ravel())}
        for (_, y, x), value in np.ndenumerate(firsts.numpy()):
            (fy, fx), (sy, sx) = where[value], where[float(seconds[0, y, x])]
            assert (fy // 2, fx // 2) == (sy // 2, sx // 2) == (y, x)
            assert abs(fy - sy) + abs(fx - sx) == 1
            orientations.add(fy == sy)
    assert orientations == {True, False}  # side by side and one above the other


def test_neighbour_pairs_are_refused_without_noisy_frames(smooth_image):
    with pytest.raises(ValueError, match="neighbour_batch_size scores pairs of pixels of noisy frames"):
        train([smooth_image], steps=1, neighbour_batch_size=4, **_tiny())


def test_the_neighbour_loss_of_the_identity_and_of_black_is_as_the_paper_defines_it(rng):
    noisy = torch.from_numpy(rng.random((4, 1, 16, 16)).astype(np.float32))
    pairs = torch.from_numpy(rng.integers(0, 2, (4, 1, 8, 8)))
    # Pairs (0, 1) and (2, 3): the two pixels of a cell's top or bottom row.
    batch = _NeighbourBatch(noisy, 2 * pairs, 2 * pairs + 1, torch.zeros(4, len(CONTEXT_QUANTILES)))
    first, second = _cell_pixels(noisy, batch.first), _cell_pixels(noisy, batch.second)
    # The identity makes the same gap at full resolution: the regulariser is 0.
    identity = _neighbour_loss(lambda images, context: images, batch, regularisation=2.0)
    torch.testing.assert_close(identity, torch.mean((first - second) ** 2))
    black = _neighbour_loss(lambda images, context: torch.zeros_like(images), batch, regularisation=2.0)
    torch.testing.assert_close(black, 3 * torch.mean(second**2))


# Neighbour pairs flatten pure noise more slowly (without their regulariser, about as fast).
@pytest.mark.parametrize("neighbour_batch_size, steps", [(0, 300), (8, 600)])
def test_a_fine_tune_on_pure_noise_does_not_learn_the_identity(noise_frames, rng, neighbour_batch_size, steps):
    model = new_model(width=4, seed=0, alpha_min=0.0)
    options = _tiny(model=model, patch_size=32) | dict(lr=1e-2, mask_fraction=0.0625, neighbour_batch_size=neighbour_batch_size)
    events, _ = _run(train(noisy=noise_frames, steps=steps, **options))
    # A network that saw the pixels it is scored on would copy them and drive the loss to 0;
    # hidden, the best guess is the mean and the loss cannot fall below the noise's variance.
    assert np.mean([e.loss for e in events[-20:]]) > 0.8 * np.var(noise_frames)
    fresh = np.clip(rng.normal(0.5, 0.1, (64, 64)), 0, 1).astype(np.float32)
    restored = restore(fresh, 0.0, model=model, device="cpu")
    assert np.std(restored) < 0.6 * np.std(fresh)
    assert abs(np.mean(restored) - 0.5) < 0.05


def test_the_frames_are_learned_as_needing_no_brightening_and_brightening_is_left_alone(smooth_image, rng):
    model = new_model(width=4, seed=0, alpha_min=0.0)
    _run(train([smooth_image], steps=3, **_tiny(model=model)))  # learned BatchNorm statistics
    estimate_before = {name: t.clone() for name, t in model.estimate.state_dict().items()}
    # Enhance-Net's head reads (x, low, alpha): the weights from alpha, always 0 here, get no gradient.
    alpha_input_before = model.enhance.head.weight[:, 2].clone()
    noisy = np.clip(smooth_image + rng.normal(0, 0.05, smooth_image.shape), 0, 1).astype(np.float32)
    alpha_before = estimate_alpha(noisy, model=model, photograph=True)
    events, _ = _run(train(noisy=[noisy], steps=40, lr=3e-3, alpha_weight=1.0, **_tiny(model=model)))
    assert estimate_alpha(noisy, model=model, photograph=True) < 0.5 * alpha_before
    # Alpha 0 never uses the difference map, and a fine-tune keeps BatchNorm's statistics.
    _assert_same_weights(model.estimate.state_dict(), estimate_before)
    # Weight decay alone must not erase them (the brightening they do at alpha > 0).
    torch.testing.assert_close(model.enhance.head.weight[:, 2], alpha_input_before, rtol=1e-5, atol=0)
    assert model.training_config["self_supervised"] is True
    assert all(e.validation_psnr is None for e in events)  # no reference to score against


def test_the_preview_is_restored_as_training_goes(noise_frames):
    preview = (noise_frames[0][:24, :20] * 65535).astype(np.uint16)
    events, model = _run(train(noisy=noise_frames[1:], steps=4, preview=preview, **_tiny_denoiser(validate_every=2)))
    assert events[0].preview is None
    shown = events[1].preview
    assert shown.shape == preview.shape and shown.dtype == np.uint16
    assert not np.array_equal(shown, preview)
    # The last one is the handed-back weights' restoration at alpha 0.
    np.testing.assert_array_equal(events[-1].preview, restore(preview, 0.0, model=model, device="cpu"))


def test_the_preview_also_comes_at_the_end_without_validations(noise_frames):
    events, _ = _run(train(noisy=noise_frames[1:], steps=3, preview=noise_frames[0], **_tiny_denoiser()))
    assert [event.preview is None for event in events] == [True, True, False]


@pytest.mark.parametrize("guide", ["clean", "blurred", "noisy"])
def test_the_calibrated_refinement_is_about_the_best_for_its_guide(rng, guide):
    clean = (data.camera()[100:228, 200:328] / 255 * 0.8 + 0.1).astype(np.float32)
    noisy = np.clip(clean + rng.normal(0, 0.05, clean.shape), 0, 1).astype(np.float32)
    denoise = {
        "clean": lambda frame: clean,
        "blurred": lambda frame: ndimage.gaussian_filter(frame, 1.0),
        "noisy": lambda frame: frame,
    }[guide]
    noise = fit_noise([noisy])
    # The error against the clean frame, which the calibration never sees, for each factor.
    errors = {
        factor: np.mean((wiener_refine(noisy, denoise(noisy), noise, guide_noise=factor) - clean) ** 2)
        for factor in GUIDE_NOISE_CHOICES
    }
    chosen = calibrated_guide_noise([noisy], denoise)
    assert errors[chosen] <= 1.1 * min(errors.values())
    # A guide that holds all the noise needs the most filtering; a clean one, little.
    assert (chosen == max(GUIDE_NOISE_CHOICES)) == (guide == "noisy")


def test_a_self_supervised_fine_tune_records_its_refinement_and_restore_uses_it(noise_frames, tmp_path, monkeypatch):
    _, model = _run(train(noisy=noise_frames, steps=2, **_tiny_denoiser()))
    assert model.training_config[GUIDE_NOISE_KEY] in GUIDE_NOISE_CHOICES
    model.training_config[GUIDE_NOISE_KEY] = 0.75
    loaded = load_model(save_model(model, tmp_path / "tuned.safetensors", training=model.training_config), device="cpu")
    used = []
    refine = inference.wiener_refine
    monkeypatch.setattr(
        inference, "wiener_refine", lambda *args, **kwargs: used.append(kwargs["guide_noise"]) or refine(*args, **kwargs)
    )
    restore(noise_frames[0], 0.0, model=loaded, device="cpu")
    restore(noise_frames[0], 0.0, model=new_model(width=4, seed=0), device="cpu")
    assert used == [0.75, inference.REFINE_GUIDE_NOISE]


def test_resuming_a_self_supervised_run_continues_exactly(noise_frames, tmp_path):
    straight = _run(train(noisy=noise_frames, steps=6, seed=3, **_tiny_denoiser()))[1]
    checkpoint = tmp_path / "self-supervised.safetensors"
    interrupted = train(noisy=noise_frames, steps=6, seed=3, checkpoint=checkpoint, checkpoint_every=3, **_tiny_denoiser())
    for event in interrupted:
        if event.step == 4:
            break
    interrupted.close()
    assert int(load_weights(checkpoint)[2]["step"][0]) == 3
    resumed = _run(train(noisy=noise_frames, steps=6, seed=3, checkpoint=checkpoint, **_tiny(model=None)))[1]
    assert resumed.training_config["self_supervised"] is True
    _assert_same_weights(resumed.state_dict(), straight.state_dict())


def test_a_checkpoint_resumes_only_with_its_kind_of_data(noise_frames, smooth_image, tmp_path):
    checkpoint = tmp_path / "noisy.safetensors"
    _run(train(noisy=noise_frames, steps=2, checkpoint=checkpoint, **_tiny_denoiser()))
    with pytest.raises(ValueError, match="self_supervised=True; resume it with the same kind of data"):
        train([smooth_image], steps=4, checkpoint=checkpoint, **_tiny_denoiser())


def test_frames_smaller_than_a_patch_with_its_margin_are_refused(rng):
    small = rng.random((18, 30)).astype(np.float32)
    with pytest.raises(ValueError, match=r"18 pixels a side .* use patch_size <= 14"):
        train(noisy=[small], steps=2, patch_size=16)


def test_a_model_whose_auto_alpha_cannot_reach_zero_is_warned_about(noise_frames):
    with pytest.warns(UserWarning, match='cannot go below 0.5: after this fine-tune "auto" still brightens'):
        train(noisy=noise_frames, steps=1, **_tiny(model=new_model(width=4, seed=0)))


def test_data_range_scales_the_frames_and_not_the_generated_scenes():
    frame = np.full((40, 40), 4095, np.uint16)
    assert _PatchSource([frame], 16, None, "noisy", data_range=4095).images[0].max() == pytest.approx(1.0)
    scene = np.full((40, 40), 0.5, np.float32)
    source = _PatchSource([frame, scene], 16, None, "images", data_range=[4095, None])
    assert source.images[0].max() == pytest.approx(1.0) and source.images[1].max() == pytest.approx(0.5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"images": "clean"}, "give one kind of training data, not images and noisy"),
        ({"denoise_fraction": 0.2}, "denoise_fraction"),
        ({"dim_images": "clean"}, "dim_images"),
        ({"alpha_batch_size": 8}, "alpha_batch_size"),
        ({"mask_fraction": 0.5}, "mask_fraction must be in"),
        ({"neighbour_batch_size": -1}, "neighbour_batch_size must be a non-negative integer"),
        ({"neighbour_regularisation": -1.0}, "neighbour_regularisation must be a non-negative number"),
        ({"data_range": -1}, "data_range"),
        ({"noisy": "one array"}, "noisy is one array; pass a list of frames"),
    ],
)
def test_settings_that_do_not_fit_noisy_frames_are_refused(noise_frames, kwargs, message):
    replacements = {"clean": [noise_frames[0]], "one array": np.stack(noise_frames)}
    arguments = {"noisy": noise_frames} | {key: replacements.get(value, value) for key, value in kwargs.items()}
    with pytest.raises(ValueError, match=message):
        train(steps=2, **arguments)
