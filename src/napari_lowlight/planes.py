"""Colour channels and N-D stacks as a batch of 2-D grey planes.

The network sees one grey plane at a time: every colour channel and every Z/T/C slice
is a plane. A ``channel_axis`` of 3 or 4 entries holds colour (RGB or RGBA): the
channels of a pixel share the guide of the difference map, and the alpha (opacity)
channel of RGBA is not an intensity and is passed through untouched. Any other number
of channels (two fluorescent labels, say) is as many grey planes, wherever the axis is.
``channel_axis="auto"`` takes a last axis of 3 or 4 entries on an image of 3 or more
dimensions for RGB(A) (:func:`auto_channel_axis`: the library, the CLI and napari agree).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._warnings import warn_user

__all__ = [
    "ChannelAxisWarning",
    "PlaneLayout",
    "auto_channel_axis",
    "channels_before_planes",
    "colour_channels",
    "is_colour",
    "opacity_channel",
    "resolve_channel_axis",
    "split_planes",
]


class ChannelAxisWarning(UserWarning):
    """An image whose last axis looks like RGB(A) channels is processed as grey planes."""


#: Channel counts that are colour, RGB and RGBA; other counts are grey planes.
COLOUR_CHANNEL_COUNTS = (3, 4)


def is_colour(channel_axis, shape) -> bool:
    """Whether the (non-negative or None) ``channel_axis`` of an image of ``shape`` holds RGB(A)."""
    return channel_axis is not None and shape[channel_axis] in COLOUR_CHANNEL_COUNTS


def channels_before_planes(ndim: int, channel_axis: int) -> tuple[int, ...]:
    """The order of axes (for ``transpose``) that puts ``channel_axis`` just before the spatial
    axes (Y, X), the last two others: where grey-plane channels go (:func:`split_planes`)."""
    axes = [axis for axis in range(ndim) if axis != channel_axis]
    axes.insert(len(axes) - 2, channel_axis)
    return tuple(axes)


@dataclass(frozen=True)
class PlaneLayout:
    """Enough to put planes back into the input's shape.

    ``channel_axis`` is None, or the axis of colour channels (:func:`is_colour`), or of other
    channels, which are planes before the spatial axes.
    """

    shape: tuple[int, ...]
    channel_axis: int | None
    has_opacity: bool

    @property
    def colour(self) -> bool:
        return is_colour(self.channel_axis, self.shape)

    @property
    def colour_shape(self) -> tuple[int, ...]:
        """Shape with the channel axis moved last (the layout of the planes' parent)."""
        if self.channel_axis is None:
            return self.shape
        shape = list(self.shape)
        channels = shape.pop(self.channel_axis)
        return (*shape, channels)

    def merge(self, planes: np.ndarray, passthrough: np.ndarray | None) -> np.ndarray:
        """Inverse of :func:`split_planes` for processed ``planes`` of shape (N, Y, X)."""
        colour_shape = self.colour_shape
        if self.channel_axis is None:
            return planes.reshape(self.shape)
        if not self.colour:
            order = channels_before_planes(len(self.shape), self.channel_axis)
            return planes.reshape([self.shape[axis] for axis in order]).transpose(np.argsort(order))
        # Planes are stored channel-first per pixel grid: (..., C, Y, X).
        channels = colour_shape[-1] - int(self.has_opacity)
        grid = (*colour_shape[:-3], channels, *colour_shape[-3:-1])
        stacked = np.moveaxis(planes.reshape(grid), -3, -1)
        if self.has_opacity:
            stacked = np.concatenate([stacked, passthrough.astype(stacked.dtype)], axis=-1)
        return np.moveaxis(stacked, -1, self.channel_axis)


def auto_channel_axis(shape) -> int | None:
    """What ``channel_axis="auto"`` means for an image of ``shape``: -1 or None.

    An image of 3 or more dimensions whose last axis has 3 or 4 entries is RGB(A), as
    napari guesses (an RGB time-lapse (T, Y, X, 3) too); anything else is grey planes.
    (napari also wants both spatial sides above 30 pixels before it shows a layer as RGB.)
    """
    return -1 if len(shape) >= 3 and shape[-1] in (3, 4) else None


def resolve_channel_axis(channel_axis, shape) -> int | None:
    """The ``channel_axis`` argument of a public function, for an image of ``shape``.

    ``"auto"`` is decided by :func:`auto_channel_axis`. None on an image that looks like
    colour (its last axis processed as 3 or 4 grey planes: slower, and an RGBA opacity
    changed like an intensity) gives a :class:`ChannelAxisWarning`. Returns what
    :func:`normalise_channel_axis` returns.
    """
    if isinstance(channel_axis, str):
        if channel_axis != "auto":
            raise ValueError(f'channel_axis must be an int, None or "auto", got {channel_axis!r}')
        channel_axis = auto_channel_axis(shape)
    elif channel_axis is None and auto_channel_axis(shape) is not None:
        warn_user(
            f"the image of shape {tuple(shape)} looks like colour, but its last axis is processed as "
            f"{shape[-1]} grey planes; pass channel_axis=-1 (or \"auto\") for RGB(A) channels",
            ChannelAxisWarning,
        )
    return normalise_channel_axis(channel_axis, len(shape))


def normalise_channel_axis(channel_axis, ndim: int) -> int | None:
    """Return ``channel_axis`` as a non-negative int, or None; check it fits ``ndim``.

    ``"auto"`` needs the image's shape: :func:`resolve_channel_axis` decides it.
    """
    if channel_axis is None:
        return None
    if isinstance(channel_axis, bool) or not isinstance(channel_axis, (int, np.integer)):
        raise TypeError(f"channel_axis must be an int or None here, got {channel_axis!r}")
    if not -ndim <= channel_axis < ndim:
        raise ValueError(f"channel_axis={channel_axis} is out of range for an image with {ndim} dimensions")
    if ndim < 3:
        raise ValueError(
            f"channel_axis={channel_axis} on a {ndim}-D image; "
            "a colour image needs two spatial axes besides the channel axis"
        )
    return int(channel_axis) % ndim


def split_planes(image: np.ndarray, channel_axis=None):
    """Reshape ``image`` into 2-D planes.

    Parameters
    ----------
    image : ndarray
        Shape (..., Y, X) without ``channel_axis``; with it, at least two other (spatial)
        axes besides the channel axis, whose channels are colour if it holds 3 (RGB) or 4
        (RGBA) and grey planes otherwise.
    channel_axis : int or None

    Returns
    -------
    planes : ndarray, shape (N, Y, X)
        A view where possible.
    passthrough : ndarray or None
        The RGBA opacity channel (channel last), returned unchanged by ``merge``.
    layout : PlaneLayout
    """
    axis = normalise_channel_axis(channel_axis, image.ndim)
    if axis is None:
        if image.ndim < 2:
            raise ValueError(f"image has shape {image.shape}; expected at least 2 dimensions (Y, X)")
        layout = PlaneLayout(image.shape, None, False)
        return image.reshape(-1, *image.shape[-2:]), None, layout
    channels = image.shape[axis]
    if channels not in COLOUR_CHANNEL_COUNTS:
        planes = image.transpose(channels_before_planes(image.ndim, axis))
        return planes.reshape(-1, *planes.shape[-2:]), None, PlaneLayout(image.shape, axis, False)
    colour_last = np.moveaxis(image, axis, -1)
    has_opacity = channels == 4
    passthrough = colour_last[..., 3:] if has_opacity else None
    colour = colour_last[..., :3] if has_opacity else colour_last
    planes = np.moveaxis(colour, -1, -3).reshape(-1, *colour.shape[-3:-1])
    return planes, passthrough, PlaneLayout(image.shape, axis, has_opacity)


def colour_channels(image, channel_axis: int | None):
    """``image`` without its RGBA opacity channel (numpy or dask alike; a view).

    ``channel_axis`` is non-negative (:func:`normalise_channel_axis`). What measures the
    image's intensities (its range, its context) must not see the opacity.
    """
    if channel_axis is None or image.shape[channel_axis] != 4:
        return image
    index = [slice(None)] * image.ndim
    index[channel_axis] = slice(0, 3)
    return image[tuple(index)]


def opacity_channel(image: np.ndarray, channel_axis) -> np.ndarray | None:
    """The RGBA opacity channel of ``image`` as stored (channel last, a view), or None.

    Outputs take it from the input as it is: it is not an intensity, so neither
    ``data_range`` nor the mapping to [0, 1] may touch it.
    """
    axis = normalise_channel_axis(channel_axis, image.ndim)
    if axis is None or image.shape[axis] != 4:
        return None
    return np.moveaxis(image, axis, -1)[..., 3:]
