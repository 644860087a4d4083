import pytest
import torch

from napari_lowlight import new_model
from napari_lowlight.network import CONTEXT_QUANTILES, MAX_DILATION, ModelConfig, deepened, fold_batchnorm, image_context, widened

BOTH_MODELS = pytest.mark.parametrize("model_name", ["tiny_model", "tiny_dilated_model"])


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


@BOTH_MODELS
def test_receptive_radius_bounds_the_influence_of_a_pixel(model_name, request):
    model = request.getfixturevalue(model_name)
    low, context = _inputs(batch=1, size=120)
    changed = low.clone()
    changed[0, 0, 60, 60] += 0.5
    alpha = torch.tensor([1.0])
    with torch.no_grad():
        delta = (model(changed, alpha, context)[0] - model(low, alpha, context)[0]).abs()[0, 0]
    radius = model.receptive_radius
    outside = torch.ones_like(delta, dtype=torch.bool)
    outside[60 - radius : 61 + radius, 60 - radius : 61 + radius] = False
    assert delta[outside].max() == 0
    assert delta[60, 60] > 0


def test_dilated_blocks_reach_further_for_the_same_parameters(tiny_model, tiny_dilated_model):
    plain = new_model(width=4, enhance_blocks=3, seed=1)
    assert tiny_dilated_model.enhance_radius == 1 + 4 * (1 + 2 + 4) + 1 > plain.enhance_radius == 1 + 4 * 3 + 1
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in tiny_dilated_model.parameters())


@pytest.mark.parametrize("dilations", [(), (0,), (MAX_DILATION + 1,), (True,), (1.5,)])
def test_bad_dilations_are_refused(dilations):
    with pytest.raises(ValueError, match="enhance_dilations"):
        ModelConfig(enhance_dilations=dilations)


@BOTH_MODELS
def test_folded_batchnorm_matches(model_name, request):
    tiny_model = request.getfixturevalue(model_name)
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


def _grown_restores_as_the_original_then_learns(model, grown):
    """Assert ``grown`` restores as ``model`` at two alphas, then backpropagate a loss through it."""
    low, context = _inputs()
    alpha = torch.tensor([0.0, 1.5])
    with torch.no_grad():
        for before, after in zip(model(low, alpha, context), grown(low, alpha, context)):
            torch.testing.assert_close(after, before)
    grown.train()
    grown(low, alpha, context)[0].square().mean().backward()


def test_deepened_restores_as_the_original_until_trained(tiny_model):
    deeper = deepened(tiny_model, (2, 4))
    assert deeper.config.enhance_dilations == (1, 1, 2, 4) and deeper.enhance_radius > tiny_model.enhance_radius
    _grown_restores_as_the_original_then_learns(tiny_model, deeper)
    # The new blocks learn from the start: their zeroed last convolution gets a gradient at
    # once, their first one after a step (behind a zeroed BatchNorm scale neither got any).
    new_blocks = list(deeper.enhance.blocks)[tiny_model.config.enhance_blocks :]
    assert all(block.conv_horizontal.weight.grad.abs().sum() > 0 for block in new_blocks)
    torch.optim.Adam(deeper.parameters(), lr=1e-3, weight_decay=1e-6).step()
    deeper.zero_grad()
    low, context = _inputs()
    deeper(low, torch.tensor([0.0, 1.5]), context)[0].square().mean().backward()
    assert all(block.conv_vertical.weight.grad.abs().sum() > 0 for block in new_blocks)
    with pytest.raises(ValueError, match="dilations is empty"):
        deepened(tiny_model, ())


@BOTH_MODELS
def test_widened_restores_as_the_original_until_trained(model_name, request):
    model = request.getfixturevalue(model_name)
    wide = widened(model, 7)
    assert wide.config.enhance_channels == 7 and wide.config.width == model.config.width
    _grown_restores_as_the_original_then_learns(model, wide)
    # The new channels learn: the zeroed weights from them into trained ones and the output get a gradient.
    assert wide.enhance.tail.weight.grad[:, 4:].abs().sum() > 0
    assert wide.enhance.blocks[0].conv_vertical.weight.grad[:4, 4:].abs().sum() > 0
    with pytest.raises(ValueError, match="enhance_width must be an integer above the current 4"):
        widened(model, 4)
