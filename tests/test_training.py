import numpy as np
import pytest
import torch

from napari_lowlight import new_model, train
from napari_lowlight.training import WeightAverage
from napari_lowlight.weights import load_weights


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


def test_stopping_between_steps_keeps_the_model(smooth_image):
    run = train([smooth_image], steps=1000, **_tiny())
    for event in run:
        if event.step == 3:
            break
    run.close()
    assert event.step == 3
    assert isinstance(event.model, torch.nn.Module)
    assert not event.model.training  # handed back in eval mode


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
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b)
    # The finished checkpoint restores like the weights the run handed back (the average).
    for a, b in zip(load_weights(checkpoint)[0].state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_weight_average_ramps_up_and_tracks_batchnorm():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    start = {name: value.clone() for name, value in model.state_dict().items()}
    average = WeightAverage(model, decay=0.99)
    with torch.no_grad():
        for value in model.state_dict().values():
            value.add_(1)
    average.update(model)  # first update: decay min(0.99, 1/10)
    for name, value in average.model.state_dict().items():
        expected = start[name] + 1 if not value.is_floating_point() else 0.1 * start[name] + 0.9 * (start[name] + 1)
        torch.testing.assert_close(value, expected)
    assert not any(p.requires_grad for p in average.model.parameters())


def test_trained_weights_are_the_average_unless_turned_off(smooth_image):
    averaged = _run(train([smooth_image], steps=12, seed=1, **_tiny()))[1]
    last = _run(train([smooth_image], steps=12, seed=1, average_decay=0.0, **_tiny()))[1]
    differences = [(a - b).abs().max() for a, b in zip(averaged.parameters(), last.parameters())]
    assert max(differences) > 0


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
        ({"alpha_range": (0, 2)}, "alpha_range"),
        ({"noise": "pink"}, "noise"),
        ({"seed": -1}, "seed"),
        ({"average_decay": 1.0}, "average_decay"),
    ],
)
def test_bad_settings_are_named(smooth_image, kwargs, word):
    arguments = {"steps": 2} | kwargs
    with pytest.raises(ValueError, match=word):
        train([smooth_image], **arguments)


def test_mismatched_pairs_are_refused(smooth_image):
    with pytest.raises(ValueError, match="pairs"):
        train(pairs=[(smooth_image, smooth_image[:10])], steps=2)
