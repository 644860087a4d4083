import torch

from napari_lowlight import new_model
from napari_lowlight.network import CONTEXT_QUANTILES, fold_batchnorm, image_context


def _inputs(batch=2, size=40, seed=0):
    generator = torch.Generator().manual_seed(seed)
    low = torch.rand(batch, 1, size, size, generator=generator)
    context = image_context(torch.rand(batch, 500, generator=generator))
    return low, context


def test_shapes(tiny_model):
    low, context = _inputs()
    restored, difference = tiny_model(low, torch.tensor([1.0, 1.5]), context)
    assert restored.shape == difference.shape == low.shape
    assert context.shape == (2, len(CONTEXT_QUANTILES))


def test_alpha_changes_output_but_not_difference(tiny_model):
    low, context = _inputs()
    with torch.no_grad():
        weak, d_weak = tiny_model(low, torch.tensor([0.5, 0.5]), context)
        strong, d_strong = tiny_model(low, torch.tensor([2.0, 2.0]), context)
    torch.testing.assert_close(d_weak, d_strong)
    assert (weak - strong).abs().max() > 1e-3


def test_cached_difference_gives_the_same_output(tiny_model):
    low, context = _inputs()
    alpha = torch.tensor([1.25, 0.75])
    with torch.no_grad():
        restored, difference = tiny_model(low, alpha, context)
        again = tiny_model.enhance(low, difference, alpha.view(-1, 1, 1, 1), context)
    torch.testing.assert_close(restored, again)


def test_receptive_radius_bounds_the_influence_of_a_pixel(tiny_model):
    low, context = _inputs(batch=1, size=80)
    changed = low.clone()
    changed[0, 0, 40, 40] += 0.5
    alpha = torch.tensor([1.0])
    with torch.no_grad():
        delta = (tiny_model(changed, alpha, context)[0] - tiny_model(low, alpha, context)[0]).abs()[0, 0]
    radius = tiny_model.receptive_radius
    outside = torch.ones_like(delta, dtype=torch.bool)
    outside[40 - radius : 41 + radius, 40 - radius : 41 + radius] = False
    assert delta[outside].max() == 0
    assert delta[40, 40] > 0


def test_folded_batchnorm_matches(tiny_model):
    low, context = _inputs()
    alpha = torch.tensor([1.0, 2.0])
    with torch.no_grad():
        expected = tiny_model(low, alpha, context)
        folded = fold_batchnorm(tiny_model)(low, alpha, context)
    for a, b in zip(expected, folded):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fold_batchnorm(tiny_model).modules())


def test_new_model_is_seeded():
    first, second = new_model(width=4, seed=3), new_model(width=4, seed=3)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        torch.testing.assert_close(a, b)
