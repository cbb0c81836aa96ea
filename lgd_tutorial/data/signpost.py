"""The signpost task: two cues that a chosen distance keeps apart, so that no convolution need see both.

A wide strip (``height`` x ``width``, e.g. 32 x 264) holds, at its left end, a
*sign*: an arrow in a random colour that points left or right. Far to its
right a small *object* (a square) moves left or right. The label says whether
the object moves the way the arrow points:

    along the arrow     it moves the way the arrow points
    against the arrow   it moves the other way

The object's track (start, speed, direction, height), the distractors (two
still, flickering squares), the background texture, the sensor noise and the
camera jitter are all drawn independently of the arrow. The label depends on
the two cues only through their combination: the arrow alone, or the object
alone, says nothing about it (50%, checked with a lookup on each cue in the
tests and in notebook 7). It is a pure conjunction (an exclusive or).

``distance`` is the number of pixels between the sign's box (plus the camera
jitter) and the nearest column the object can reach. It is the variable of
``lgd reach-study``: at a small distance the teaching network's later blocks
see the arrow and the object together; beyond the reach of its receptive
fields no position of any block does (``viz.receptive_field_reach`` computes
this exactly, ``reach_study.connecting_blocks`` per distance).

Why the sign sits at one fixed end rather than at either end (a beacon on the
left or the right edge, as in ``data.synthetic``): the object must keep the
distance from every place the far cue can be. With a cue at either end, the
strip must be twice the reach wide; with one fixed place whose *content*
varies, once. The far end then costs about as many pixels as the 96 x 96
frames of ``lgd study``.
"""

from __future__ import annotations

import numpy as np

from .synthetic import CAMERA_JITTER, PALETTE, texture

CLASSES = ["along the arrow", "against the arrow"]
ARROWS = ("left", "right")
DEFAULTS = {"height": 32, "sign_width": 16, "object_size": 8, "room": 32, "frames": 8}


def geometry(distance: int, height: int = DEFAULTS["height"], sign_width: int = DEFAULTS["sign_width"],
             object_size: int = DEFAULTS["object_size"], room: int = DEFAULTS["room"]) -> dict:
    """Pixel layout of the strip for a cue ``distance``.

    The sign fills columns ``[0, sign_width)``; with the camera jitter it can
    cover ``sign_width + CAMERA_JITTER`` columns. The object's left edge stays
    in ``[start, start + room]`` with ``start = sign_width + CAMERA_JITTER +
    distance``, so no column of the object is nearer than ``distance`` to any
    column of the sign. ``width`` leaves 4 columns after the object's furthest
    reach (plus the jitter) and is rounded up to a multiple of 8.
    """
    if distance < 0 or room < 8 or object_size < 4 or height < object_size + 4 or sign_width < 8:
        raise ValueError(f"bad signpost layout: distance {distance} (>= 0), room {room} (>= 8), "
                         f"object_size {object_size} (>= 4), height {height} (>= object_size + 4), "
                         f"sign_width {sign_width} (>= 8)")
    start = sign_width + CAMERA_JITTER + distance
    width = -(-(start + room + object_size + CAMERA_JITTER + 4) // 8) * 8
    return {"distance": distance, "height": height, "width": width, "sign_width": sign_width,
            "object_size": object_size, "room": room, "start": start}


def sign_region(layout: dict) -> np.ndarray:
    """bool (H, W): every pixel the sign can cover (its box plus the camera jitter)."""
    region = np.zeros((layout["height"], layout["width"]), dtype=bool)
    region[:, : layout["sign_width"] + CAMERA_JITTER] = True
    return region


def object_region(layout: dict) -> np.ndarray:
    """bool (H, W): every pixel the object can cover (its whole track range plus the camera jitter)."""
    region = np.zeros((layout["height"], layout["width"]), dtype=bool)
    left = layout["start"] - CAMERA_JITTER
    region[:, left: layout["start"] + layout["room"] + layout["object_size"] + CAMERA_JITTER] = True
    return region


def _arrow_mask(arrow: str, height: int, sign_width: int) -> np.ndarray:
    """bool (height, sign_width): a filled triangle pointing ``arrow``, centred in the sign's box."""
    columns = np.arange(sign_width)
    rows = np.arange(height)[:, None]
    inner = columns[2: sign_width - 2]
    half = (height / 2 - 3) * (inner[-1] - inner + 0.5) / (len(inner))       # wide at the base, 0 at the tip
    mask = np.zeros((height, sign_width), dtype=bool)
    mask[:, 2: sign_width - 2] = np.abs(rows + 0.5 - height / 2) <= half
    return mask if arrow == "right" else mask[:, ::-1]


def render(label: int, rng: np.random.Generator, layout: dict, frames: int = DEFAULTS["frames"],
           with_info: bool = False, arrow: str | None = None):
    """Frames (T, H, W, 3) uint8 of one clip of class ``label`` (an index into CLASSES) in ``layout``.

    ``arrow`` ("left" or "right") is drawn from ``rng`` if not given; a dataset
    should give it, so that every (arrow, label) cell holds exactly as many clips
    (``clip_cues``): a random draw leaves the cells of a finite set unequal, and
    the arrow alone then predicts the label a little. Every other random choice
    (colours, the square's speed, start, height and the distractors, as shares of
    the room they have) is drawn before the texture and the noise, whose amount
    depends on the strip's size: the same ``rng`` state gives the same scene at
    every distance, drawn at other places. ``with_info=True`` also returns what
    was drawn: the arrow, the square's motion ("left" or "right"), the colours
    and the square's top-left (y, x) per frame before camera jitter.
    """
    if label not in (0, 1):
        raise ValueError(f"label must be 0 ({CLASSES[0]}) or 1 ({CLASSES[1]}), got {label}")
    if arrow is None:
        arrow = ARROWS[rng.integers(2)]
    elif arrow not in ARROWS:
        raise ValueError(f"arrow must be one of {ARROWS}, got {arrow!r}")
    height, width, obj = layout["height"], layout["width"], layout["object_size"]
    motion = arrow if label == 0 else ARROWS[1 - ARROWS.index(arrow)]
    sign_colour, object_colour = (int(c) for c in rng.integers(len(PALETTE), size=2))
    travel_share, start_share, y_share = rng.uniform(0.6, 1.0), rng.random(), rng.random()
    distractor_draws = rng.random((2, 3))
    background = texture(rng, height, width)

    travel = layout["room"] * travel_share
    x0 = layout["start"] + (layout["room"] - travel) * start_share
    y = 2 + int(y_share * (height - obj - 3))
    steps = max(1, frames - 1)
    xs = [x0 + travel * t / steps for t in range(frames)]
    if motion == "left":
        xs = xs[::-1]
    low_x, high_x = layout["sign_width"] + 2, width - obj // 2 - 2
    distractors = [(int(a * (height - obj // 2 - 1)), int(low_x + b * (high_x - low_x)), int(c * len(PALETTE)))
                   for a, b, c in distractor_draws]
    arrow_mask = _arrow_mask(arrow, height, layout["sign_width"])
    out = np.empty((frames, height, width, 3), dtype=np.uint8)
    track = []
    j = CAMERA_JITTER
    for t in range(frames):
        img = background.copy()
        img[:, : layout["sign_width"]][arrow_mask] = PALETTE[sign_colour]
        for dy, dx, c in distractors:                                   # still, flickering in brightness
            img[dy: dy + obj // 2 + 2, dx: dx + obj // 2 + 2] = PALETTE[c] * rng.uniform(0.7, 1.0)
        x = int(round(xs[t]))
        track.append((y, x))
        img[y: y + obj, x: x + obj] = PALETTE[object_colour]
        img += rng.normal(0, 6, img.shape).astype(np.float32)          # sensor noise
        sy, sx = rng.integers(0, 2 * j + 1, size=2)                      # camera jitter
        img = np.pad(img, ((j, j), (j, j), (0, 0)), mode="edge")[sy: sy + height, sx: sx + width]
        out[t] = np.clip(img, 0, 255).astype(np.uint8)
    if with_info:
        return out, {"arrow": arrow, "motion": motion, "sign_colour": sign_colour, "object_colour": object_colour,
                     "track": track, **layout}
    return out


def clip_cues(number: int) -> tuple[int, str]:
    """(label, arrow) of clip ``number`` of a dataset: cycling through the four (label, arrow) cells, so every
    block of four clips holds each once and neither cue alone says anything about the label."""
    return number % len(CLASSES), ARROWS[(number // len(CLASSES)) % len(ARROWS)]


def flip_sign(frames: np.ndarray, layout: dict) -> tuple[np.ndarray, np.ndarray]:
    """The counterfactual clip: the sign's box mirrored left-right, so the arrow points the other way.

    ``frames`` (T, H, W, 3). Only the columns the sign can cover (its box plus
    the camera jitter) change, so "along" becomes "against" and nothing else
    moves. Returns (counterfactual frames, the changed region as bool (H, W)).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[1:3] != (layout["height"], layout["width"]):
        raise ValueError(f"expected frames (T, {layout['height']}, {layout['width']}, 3) for this layout, "
                         f"got {frames.shape}")
    box = layout["sign_width"]
    out = frames.copy()
    out[:, :, :box] = frames[:, :, box - 1:: -1]
    region = np.zeros(frames.shape[1:3], dtype=bool)
    region[:, :box + CAMERA_JITTER] = True
    return out, region
