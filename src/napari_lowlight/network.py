"""The deep residual network: Estimate-Net, Enhance-Net and the model that joins them.

Paper (section 3.2): Estimate-Net estimates the difference map ``D`` from the low image;
``low + alpha * D`` goes into Enhance-Net, which denoises and corrects it. Residual
blocks use a 7x3 followed by a 3x7 convolution (a 7x7 reach for the cost of two thin
kernels), with BatchNorm in front of and behind them.

Where the paper is silent (see docs/model.md for the measurements):

* Image-level context. A 48x48 patch cannot tell ``gamma``: at alpha = 1 the low
  value 0.25 is 0.40 for gamma = 0.5 and 0.63 for gamma = 2. The model therefore also
  gets quantiles of the whole low image (:func:`image_context`), which modulate the
  features of both nets (FiLM) and give an automatic alpha estimate.
* Alpha enters only after Estimate-Net, so a new alpha re-runs only Enhance-Net; the
  difference map is cached by the caller. Enhance-Net gets ``x``, the low image and
  alpha, so it knows how much the noise was amplified.
* Reflect padding in every convolution: no dark frame at image borders, exact BatchNorm
  folding (a per-channel affine commutes with reflection) and exact tiling.
* Optionally dilated Enhance-Net blocks (``ModelConfig.enhance_dilations``): a frame at a
  few photons per pixel needs an average over a wider neighbourhood than two 7x7 blocks
  reach; dilation widens it for no extra parameters and, unlike downsampling, keeps
  every layer translation-equivariant, so tiling stays exact.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ModelConfig",
    "ResidualBlock",
    "EstimateNet",
    "EnhanceNet",
    "LowLightNet",
    "CONTEXT_QUANTILES",
    "image_context",
    "fold_batchnorm",
    "deepened",
    "widened",
]

#: Quantile levels of the low image that form the image-level context.
CONTEXT_QUANTILES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999)

#: Largest Enhance-Net dilation: a 7-tap kernel dilated by d reflect-pads 3 * d pixels, which
#: needs planes larger than that (inference pads smaller planes to 16 pixels).
MAX_DILATION = 5

#: Alpha range of the paper's darkening; the automatic estimate stays inside it, or
#: inside [0, 2] for a model also trained on undarkened frames (``ModelConfig.alpha_min``).
ALPHA_RANGE = (0.5, 2.0)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters (stored in every weights file)."""

    width: int = 16
    #: Feature channels of Enhance-Net, if not ``width``: the denoising it does on dense
    #: texture needs more of them than Estimate-Net's smooth difference map does.
    enhance_width: int | None = None
    estimate_blocks: int = 3
    enhance_blocks: int = 2
    #: Dilation of each Enhance-Net block's kernels, cycled over the blocks: a dilated
    #: block reaches further for the same cost (noisier frames need a wider average).
    enhance_dilations: tuple[int, ...] = (1,)
    context_hidden: int = 32
    #: Smallest alpha of ``alpha="auto"``: 0 for a model also trained on undarkened,
    #: noisy frames (alpha 0 is then "denoise only"), else the paper's 0.5.
    alpha_min: float = ALPHA_RANGE[0]

    def __post_init__(self):
        # A weights file's JSON metadata gives a list.
        object.__setattr__(self, "enhance_dilations", tuple(self.enhance_dilations))
        if not self.enhance_dilations or not all(
            isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_DILATION for d in self.enhance_dilations
        ):
            raise ValueError(f"enhance_dilations must be integers in [1, {MAX_DILATION}], got {self.enhance_dilations!r}")
        if self.enhance_width is not None and (
            isinstance(self.enhance_width, bool) or not isinstance(self.enhance_width, int) or self.enhance_width < 1
        ):
            raise ValueError(f"enhance_width must be a positive integer or None, got {self.enhance_width!r}")
        if isinstance(self.alpha_min, bool) or not isinstance(self.alpha_min, (int, float)):
            raise ValueError(f"alpha_min must be a number, got {self.alpha_min!r}")
        if not 0 <= self.alpha_min <= ALPHA_RANGE[0]:
            raise ValueError(f"alpha_min must be in [0, {ALPHA_RANGE[0]}], got {self.alpha_min!r}")

    @property
    def enhance_channels(self) -> int:
        """Feature channels of Enhance-Net (``enhance_width``, else ``width``)."""
        return self.width if self.enhance_width is None else self.enhance_width

    @property
    def block_dilations(self) -> tuple[int, ...]:
        """The dilation of each Enhance-Net block (``enhance_dilations`` cycled over them)."""
        return tuple(self.enhance_dilations[i % len(self.enhance_dilations)] for i in range(self.enhance_blocks))

    def to_dict(self) -> dict:
        return asdict(self)


def image_context(samples: torch.Tensor) -> torch.Tensor:
    """Image-level statistics of low images, shape (B, len(CONTEXT_QUANTILES)).

    Parameters
    ----------
    samples : Tensor, shape (B, S)
        Pixel values in [0, 1] drawn from each whole low image (a random subset
        suffices: quantiles of a few thousand pixels are stable).

    Square roots spread out the dark values where low-light images put most pixels.
    """
    levels = torch.tensor(CONTEXT_QUANTILES, dtype=samples.dtype, device=samples.device)
    return torch.quantile(samples, levels, dim=1).T.clamp(min=0).sqrt()


def conv(in_channels: int, out_channels: int, kernel_size, dilation: int = 1) -> nn.Conv2d:
    """A 'same' convolution with reflect padding."""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    padding = (kh // 2 * dilation, kw // 2 * dilation)
    return nn.Conv2d(in_channels, out_channels, (kh, kw), padding=padding, dilation=dilation, padding_mode="reflect")


def conv_radius(module: nn.Module) -> int:
    """Receptive radius in pixels of the convolutions of ``module`` applied in sequence."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return max(sum(m.kernel_size[axis] // 2 * m.dilation[axis] for m in convs) for axis in (0, 1))


class ResidualBlock(nn.Module):
    """``relu(x + BN(conv3x7(relu(conv7x3(BN(x))))))``: the paper's block.

    ``dilation`` spaces the kernels' taps (1: the paper's block).
    """

    def __init__(self, width: int, dilation: int = 1):
        super().__init__()
        self.norm_in = nn.BatchNorm2d(width)
        self.conv_vertical = conv(width, width, (7, 3), dilation)
        self.conv_horizontal = conv(width, width, (3, 7), dilation)
        self.norm_out = nn.BatchNorm2d(width)

    def forward(self, x):
        y = F.relu(self.conv_vertical(self.norm_in(x)))
        return F.relu(x + self.norm_out(self.conv_horizontal(y)))


class ContextModulation(nn.Module):
    """Image context -> per-channel scale and shift of a feature map (FiLM)."""

    def __init__(self, config: ModelConfig, width: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(len(CONTEXT_QUANTILES), config.context_hidden),
            nn.ReLU(),
            nn.Linear(config.context_hidden, 2 * width),
        )

    def forward(self, features, context):
        scale, shift = self.mlp(context)[..., None, None].chunk(2, dim=1)
        return features * (1 + scale) + shift


class EstimateNet(nn.Module):
    """Estimate the difference map ``D`` from the low image and its image context."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        width = config.width
        self.head = conv(1, width, 3)
        self.modulation = ContextModulation(config, width)
        self.blocks = nn.Sequential(*(ResidualBlock(width) for _ in range(config.estimate_blocks)))
        self.tail = conv(width, 1, 3)

    def forward(self, low, context):
        features = F.relu(self.modulation(self.head(low), context))
        return self.tail(self.blocks(features))


class EnhanceNet(nn.Module):
    """Denoise and correct ``x = low + alpha * D`` (a residual on ``x``).

    It also gets the image context: knowing alpha, the image's statistics say much
    more about gamma (the tone curve to undo) than they do without it.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        width = config.enhance_channels
        self.head = conv(3, width, 3)  # x, low, alpha
        self.modulation = ContextModulation(config, width)
        self.blocks = nn.Sequential(*(ResidualBlock(width, d) for d in config.block_dilations))
        self.tail = conv(width, 1, 3)

    def forward(self, low, difference, alpha, context):
        x = low + alpha * difference
        inputs = torch.cat([x, low, alpha.expand_as(low)], dim=1)
        features = F.relu(self.modulation(self.head(inputs), context))
        return x + self.tail(self.blocks(features))


class AlphaEstimator(nn.Module):
    """Guess the low-light intensity alpha from the image context (for ``alpha="auto"``)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(len(CONTEXT_QUANTILES), config.context_hidden), nn.ReLU(), nn.Linear(config.context_hidden, 1)
        )
        self.low, self.high = config.alpha_min, ALPHA_RANGE[1]

    def forward(self, context):
        return self.low + (self.high - self.low) * torch.sigmoid(self.mlp(context)).squeeze(-1)


class LowLightNet(nn.Module):
    """Estimate-Net and Enhance-Net joined: ``(low, alpha, context) -> restored``.

    Inputs are tensors of shape (B, 1, H, W) in [0, 1], ``alpha`` of shape (B,) and
    ``context`` of shape (B, len(CONTEXT_QUANTILES)) from :func:`image_context`.
    """

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config or ModelConfig()
        self.estimate = EstimateNet(self.config)
        self.enhance = EnhanceNet(self.config)
        self.alpha_estimator = AlphaEstimator(self.config)

    @property
    def receptive_radius(self) -> int:
        """Pixels on each side an output pixel depends on (the halo tiling needs)."""
        return conv_radius(self.estimate) + conv_radius(self.enhance)

    @property
    def enhance_radius(self) -> int:
        """Receptive radius of Enhance-Net alone (the halo of a live alpha change)."""
        return conv_radius(self.enhance)

    def forward(self, low, alpha, context):
        """Return ``(restored, difference)``, both (B, 1, H, W)."""
        difference = self.estimate(low, context)
        return self.enhance(low, difference, alpha.view(-1, 1, 1, 1), context), difference


def seeded_network(config: ModelConfig, seed: int) -> LowLightNet:
    """A new :class:`LowLightNet` initialised from ``seed``, leaving the global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LowLightNet(config)


def deepened(model: LowLightNet, dilations, *, seed: int = 0) -> LowLightNet:
    """A copy of ``model`` with further Enhance-Net blocks, each starting as the identity.

    The trained weights are kept and the new blocks (one per entry of ``dilations``,
    their dilations) pass their input through until training changes them: the copy
    restores exactly as ``model`` does, and a fine-tune starts from its quality.

    Parameters
    ----------
    model : LowLightNet
    dilations : sequence of int
        Dilation of each block appended after the existing ones.
    seed : int
        Seeds the new blocks' convolutions.
    """
    dilations = tuple(dilations)
    if not dilations:
        raise ValueError("dilations is empty: give the dilation of each block to add")
    old = model.config
    config = replace(old, enhance_blocks=old.enhance_blocks + len(dilations), enhance_dilations=old.block_dilations + dilations)
    grown = seeded_network(config, seed)
    grown.load_state_dict(model.state_dict(), strict=False)  # all but the new blocks
    for block in list(grown.enhance.blocks)[old.enhance_blocks :]:
        # relu(x + BN(0)) is x: BatchNorm maps the zeroed convolution's output to 0 (its running
        # statistics are 0 and 1, a batch's mean is the 0 itself), and the features entering a
        # block are already past a ReLU. Zeroing the last convolution rather than BatchNorm's
        # scale lets the gradient reach both convolutions from the first steps: behind a zero
        # scale they got none, and Adam's L2 weight decay, then their only gradient, shrank
        # them towards 0 faster than the scale could grow (the first fluorescence weights'
        # added blocks ended with weights of 1e-10 and subnormal gradients).
        nn.init.zeros_(block.conv_horizontal.weight)
        nn.init.zeros_(block.conv_horizontal.bias)
    grown.training_config = getattr(model, "training_config", {})
    return grown.train(model.training)


def widened(model: LowLightNet, enhance_width: int, *, seed: int = 0) -> LowLightNet:
    """A copy of ``model`` whose Enhance-Net has ``enhance_width`` feature channels.

    The trained channels keep their weights; the new ones start from a fresh
    initialisation with every weight from a new channel into a trained one (and into the
    output) at zero, so the copy restores exactly as ``model`` does and a fine-tune
    starts from its quality, while gradients reach the new channels from the first step.

    Parameters
    ----------
    model : LowLightNet
    enhance_width : int
        Enhance-Net's new channel count, above the current one.
    seed : int
        Seeds the new channels' initial weights.
    """
    old = model.config.enhance_channels
    if isinstance(enhance_width, bool) or not isinstance(enhance_width, int) or enhance_width <= old:
        raise ValueError(f"enhance_width must be an integer above the current {old}, got {enhance_width!r}")
    wide = seeded_network(replace(model.config, enhance_width=enhance_width), seed)
    wide.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("enhance.")}, strict=False)
    trained = model.enhance.state_dict()
    with torch.no_grad():
        # state_dict() tensors share the modules' storage: writing into them sets the weights.
        for name, tensor in wide.enhance.state_dict().items():
            source = trained[name]
            if name.startswith("modulation.mlp.2."):
                # Scales of all channels, then shifts: each half keeps its trained rows.
                for half in range(2):
                    tensor[half * enhance_width : half * enhance_width + old] = source[half * old : (half + 1) * old]
                continue
            if tensor.dim() == 4 and not name.startswith("head."):
                tensor[:, old:] = 0  # no new channel feeds a trained one or the output yet
            tensor[tuple(slice(0, n) for n in source.shape)] = source
    wide.training_config = getattr(model, "training_config", {})
    return wide.train(model.training)


def fold_batchnorm(model: LowLightNet) -> LowLightNet:
    """An inference copy of ``model`` with every BatchNorm folded into its convolution.

    In eval mode BatchNorm is a per-channel affine map, so ``BN -> conv`` and
    ``conv -> BN`` are each one convolution: same outputs (exactly, thanks to reflect
    padding), fewer passes over memory.
    """
    folded = copy.deepcopy(model).eval()
    with torch.no_grad():
        for block in folded.modules():
            if not isinstance(block, ResidualBlock):
                continue
            scale_in, shift_in = _affine(block.norm_in)
            conv_v = block.conv_vertical
            conv_v.bias += (conv_v.weight * shift_in[None, :, None, None]).sum(dim=(1, 2, 3))
            conv_v.weight *= scale_in[None, :, None, None]
            scale_out, shift_out = _affine(block.norm_out)
            conv_h = block.conv_horizontal
            conv_h.weight *= scale_out[:, None, None, None]
            conv_h.bias.copy_(conv_h.bias * scale_out + shift_out)
            block.norm_in = nn.Identity()
            block.norm_out = nn.Identity()
    return folded


def _affine(norm: nn.BatchNorm2d):
    """Eval-mode BatchNorm as ``scale * x + shift`` per channel."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return scale, norm.bias - norm.running_mean * scale
