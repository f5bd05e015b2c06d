"""Synthetic scenes for the demo corpus: sampling and rendering to JPEG.

A scene is one or two coloured shapes on a plain or gradient background. Its
words (colour, shape, size, position, background colour) are what the demo
captions describe, so a small image-text model can learn to match the two.
Everything random is drawn from a `numpy.random.Generator` the caller seeds,
so a scene and its pixels depend only on that generator's seed.
"""

from collections.abc import Mapping
import dataclasses
import io
import math
from typing import Any

import numpy as np
from PIL import Image
from PIL import ImageDraw

# Colour names and their RGB values; the names are the caption vocabulary.
COLOUR_RGB: Mapping[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "orange": (245, 140, 25),
    "yellow": (245, 215, 40),
    "green": (40, 165, 60),
    "blue": (35, 80, 215),
    "purple": (125, 50, 170),
    "pink": (245, 150, 190),
    "brown": (115, 70, 35),
    "black": (20, 20, 20),
    "white": (245, 245, 245),
}
COLOURS: tuple[str, ...] = tuple(COLOUR_RGB)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "heart",
                           "moon")
SIZES: tuple[str, ...] = ("small", "large")
POSITIONS: tuple[str, ...] = ("left", "right", "top", "bottom", "centre")
BACKGROUND_STYLES: tuple[str, ...] = ("plain", "gradient")

# Where each position puts a shape's centre, as fractions of width and height.
_ANCHORS: Mapping[str, tuple[float, float]] = {
    "left": (0.25, 0.5),
    "right": (0.75, 0.5),
    "top": (0.5, 0.25),
    "bottom": (0.5, 0.75),
    "centre": (0.5, 0.5),
}
# Two shapes sit on opposite sides, so they never cover each other.
_PAIRED_POSITIONS = (("left", "right"), ("top", "bottom"))
# Shape radius as a fraction of the image's shorter side, by size; two shapes
# share the image, so each gets less room.
_RADIUS = {1: {"small": 0.14, "large": 0.3}, 2: {"small": 0.11, "large": 0.2}}
_RADIUS_JITTER = 0.02
_CENTRE_JITTER = 0.03
_MAX_ROTATION_DEGREES = 12.0
# How far a gradient's far end moves from the base colour towards white or
# black: visible, yet the base colour still names the background.
_GRADIENT_BLEND = 0.4
# Pixel noise amplitude range (uniform noise, standard deviation a / sqrt 3).
_NOISE_AMPLITUDE_RANGE = (4, 12)
JPEG_QUALITY = 90


@dataclasses.dataclass(frozen=True)
class SceneShape:
  """One shape: its words and its exact geometry.

  Attributes:
    shape, colour, size, position: the words a caption uses.
    centre: the shape's centre as fractions (x, y) of the image width and
      height.
    radius: the shape's radius as a fraction of the image's shorter side.
    rotation: clockwise rotation in degrees.
  """

  shape: str
  colour: str
  size: str
  position: str
  centre: tuple[float, float]
  radius: float
  rotation: float


@dataclasses.dataclass(frozen=True)
class Background:
  """A plain colour, or a gradient from `colour` to a lighter or darker tone.

  Attributes:
    colour: the colour word a caption uses.
    style: "plain" or "gradient".
    towards: for a gradient, "white" or "black" (the far end's tone).
    direction: for a gradient, "horizontal" or "vertical".
  """

  colour: str
  style: str
  towards: str | None = None
  direction: str | None = None


@dataclasses.dataclass(frozen=True)
class Scene:
  """One or two shapes on a background."""

  shapes: tuple[SceneShape, ...]
  background: Background

  def to_json(self) -> dict[str, Any]:
    """The scene as JSON-ready values (the corpus records it per example)."""
    # Plain field dicts: `dataclasses.asdict` deep-copies, a tenth of the
    # corpus generation time.
    return {"shapes": [dict(vars(s)) for s in self.shapes],
            "background": dict(vars(self.background))}

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> "Scene":
    """Inverse of `to_json`."""
    shapes = tuple(
        SceneShape(**{**s, "centre": tuple(s["centre"])})
        for s in data["shapes"])
    return cls(shapes=shapes, background=Background(**data["background"]))


def sample_scene(rng: np.random.Generator, shape: str | None = None
                 ) -> Scene:
  """Draws a random scene: one or two shapes, each unlike the background.

  With `shape`, the scene holds that one shape only (and `rng` is drawn
  from differently).
  """
  num_shapes = 1 if shape is not None else int(rng.integers(1, 3))
  if num_shapes == 1:
    positions = (POSITIONS[rng.integers(len(POSITIONS))],)
  else:
    pair = _PAIRED_POSITIONS[rng.integers(len(_PAIRED_POSITIONS))]
    positions = pair if rng.random() < 0.5 else pair[::-1]
  background_colour = COLOURS[rng.integers(len(COLOURS))]
  shape_colours = [c for c in COLOURS if c != background_colour]
  shapes = []
  for position in positions:
    size = SIZES[rng.integers(len(SIZES))]
    anchor_x, anchor_y = _ANCHORS[position]
    jitter_x, jitter_y = rng.uniform(-_CENTRE_JITTER, _CENTRE_JITTER, 2)
    shapes.append(SceneShape(
        shape=shape if shape is not None else SHAPES[
            rng.integers(len(SHAPES))],
        colour=shape_colours[rng.integers(len(shape_colours))],
        size=size,
        position=position,
        centre=(round(float(anchor_x + jitter_x), 4),
                round(float(anchor_y + jitter_y), 4)),
        radius=round(_RADIUS[num_shapes][size]
                     + float(rng.uniform(-_RADIUS_JITTER, _RADIUS_JITTER)), 4),
        rotation=round(float(rng.uniform(-_MAX_ROTATION_DEGREES,
                                         _MAX_ROTATION_DEGREES)), 2),
    ))
  if rng.random() < 0.5:
    background = Background(background_colour, "plain")
  else:
    background = Background(
        background_colour, "gradient",
        towards=("white", "black")[rng.integers(2)],
        direction=("horizontal", "vertical")[rng.integers(2)])
  return Scene(shapes=tuple(shapes), background=background)


def _background(background: Background, width: int,
                height: int) -> Image.Image:
  if background.style == "plain":
    return Image.new("RGB", (width, height), COLOUR_RGB[background.colour])
  base = np.asarray(COLOUR_RGB[background.colour], np.float32)
  far = np.asarray(COLOUR_RGB[background.towards], np.float32)
  far = base + _GRADIENT_BLEND * (far - base)
  horizontal = background.direction == "horizontal"
  ramp = np.linspace(0.0, 1.0, width if horizontal else height,
                     dtype=np.float32)[:, None]
  line = (base + ramp * (far - base) + 0.5).astype(np.uint8)
  # A one-pixel row (or column) of the ramp, stretched over the image.
  line = line[None, :, :] if horizontal else line[:, None, :]
  return Image.fromarray(line).resize((width, height), Image.Resampling.NEAREST)


def _rotated(points: np.ndarray, degrees: float, cx: float,
             cy: float) -> list[tuple[float, float]]:
  """Rotates unit-free offsets `points` (N x 2) and moves them to (cx, cy)."""
  angle = math.radians(degrees)
  cos, sin = math.cos(angle), math.sin(angle)
  x = points[:, 0] * cos - points[:, 1] * sin + cx
  y = points[:, 0] * sin + points[:, 1] * cos + cy
  return list(zip(x.tolist(), y.tolist()))


def _regular_polygon(corners: int, start_degrees: float) -> np.ndarray:
  angles = np.radians(start_degrees + 360.0 / corners * np.arange(corners))
  return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _star_outline() -> np.ndarray:
  radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
  angles = np.radians(-90.0 + 36.0 * np.arange(10))
  return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _heart_outline() -> np.ndarray:
  t = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)
  x = 16.0 * np.sin(t) ** 3
  y = -(13.0 * np.cos(t) - 5.0 * np.cos(2 * t) - 2.0 * np.cos(3 * t)
        - np.cos(4 * t))
  return np.stack([x, y + 2.5], axis=1) / 16.0


# Outlines with unit radius, centred on the origin (y grows downwards).
_OUTLINES: Mapping[str, np.ndarray] = {
    "square": _regular_polygon(4, 45.0) * 0.9,
    "triangle": _regular_polygon(3, -90.0) * 1.1,
    "star": _star_outline(),
    "heart": _heart_outline(),
}
# The moon is a disc with an offset disc cut out of it (a crescent).
_MOON_CUT_OFFSET = 0.45
# How far any outline reaches from its centre, in radii (the heart's tip).
_MAX_OUTLINE_REACH = max(1.0, *(np.abs(o).max() for o in _OUTLINES.values()))


def _draw_shape(draw: ImageDraw.ImageDraw, shape: SceneShape, cx: float,
                cy: float, r: float) -> None:
  """Draws `shape` centred at (cx, cy) with radius `r` (pixels) into an "L"
  mask, with value 255 where the shape is."""
  if shape.shape == "circle":
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
  elif shape.shape == "moon":
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    angle = math.radians(shape.rotation)
    ox = cx + _MOON_CUT_OFFSET * r * math.cos(angle)
    oy = cy + _MOON_CUT_OFFSET * r * math.sin(angle)
    draw.ellipse((ox - r, oy - r, ox + r, oy + r), fill=0)
  else:
    draw.polygon(_rotated(_OUTLINES[shape.shape] * r, shape.rotation, cx, cy),
                 fill=255)


def _paint_shape(image: Image.Image, shape: SceneShape) -> None:
  """Paints `shape` onto `image` through a mask the size of its bounding box
  (masks the size of the whole image cost several times more)."""
  width, height = image.size
  r = shape.radius * min(width, height)
  cx, cy = shape.centre[0] * width, shape.centre[1] * height
  reach = _MAX_OUTLINE_REACH * r + 1
  left, top = max(0, math.floor(cx - reach)), max(0, math.floor(cy - reach))
  right = min(width, math.ceil(cx + reach))
  bottom = min(height, math.ceil(cy + reach))
  if right <= left or bottom <= top:
    return
  mask = Image.new("L", (right - left, bottom - top), 0)
  _draw_shape(ImageDraw.Draw(mask), shape, cx - left, cy - top, r)
  image.paste(COLOUR_RGB[shape.colour], (left, top, right, bottom), mask)


def render_scene(scene: Scene, width: int, height: int,
                 rng: np.random.Generator) -> np.ndarray:
  """Renders `scene` as a uint8 (height, width, 3) array with pixel noise.

  The noise is uniform in [-a, a] per channel, with a drawn per image; it is
  made from raw random bytes, several times faster than Gaussian noise.
  """
  image = _background(scene.background, width, height)
  for shape in scene.shapes:
    _paint_shape(image, shape)
  amplitude = int(rng.integers(*_NOISE_AMPLITUDE_RANGE, endpoint=True))
  raw = np.frombuffer(rng.bytes(height * width * 3), np.uint8)
  noise = (raw.astype(np.int16) * (2 * amplitude + 1) >> 8) - amplitude
  pixels = np.asarray(image, np.int16) + noise.reshape(height, width, 3)
  return np.clip(pixels, 0, 255).astype(np.uint8)


def encode_jpeg(pixels: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
  """Encodes a uint8 RGB array as baseline JPEG bytes, deterministically."""
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
  return buffer.getvalue()
