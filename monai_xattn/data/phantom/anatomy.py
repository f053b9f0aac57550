"""Synthetic chest radiograph anatomy: a patient's geometry and the X-ray attenuation it produces.

Everything is drawn in a *patient frame*: ``px`` runs from the patient's right (-) to left (+) with the widest
thorax at ``|px| = 1``; ``py`` runs head (-) to feet (+) with the thorax centre at 0. A PA or AP radiograph
shows the patient's right on the image left, so ``px`` grows with the image column. Each structure is a smooth
closed-form field over the pixel grid (sigmoid edges, no per-pixel loops), summed into an attenuation map
``A`` (soft tissue ~1, aerated lung lower, bone higher); :func:`expose` turns ``A`` into a detector image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

__all__ = [
    "Patient",
    "PatientFrame",
    "Anatomy",
    "sample_patient",
    "lung_geometry",
    "render_frontal",
    "render_lateral",
    "expose",
    "sigmoid",
    "smooth_field",
]


def sigmoid(t: np.ndarray) -> np.ndarray:
    """Logistic edge profile, ``(1 + tanh) / 2`` (tanh does not overflow for large ``|t|``)."""
    return 0.5 + 0.5 * np.tanh(t)


@dataclass(frozen=True)
class Patient:
    """Geometry and acquisition of one synthetic patient.

    Attributes:
        view: ``"PA"``, ``"AP"`` or ``"LATERAL"``.
        sex: ``"M"`` or ``"F"``.
        age: years.
        center: thorax centre in image-normalised ``(x, y)`` (0..1 across columns / rows).
        scale: thorax half-width as a fraction of the image width.
        aspect: vertical stretch of the thorax (tall, slim patients > 1).
        rotation: in-plane rotation in radians (positive turns the patient clockwise on screen).
        ctr: cardiothoracic ratio (> 0.5 is cardiomegaly on a PA film).
        dome: hemidiaphragm dome heights ``(right, left)`` in patient ``py``.
        lung_width: lateral reach of the lungs in ``|px|``.
        exposure: film exposure multiplier (higher is darker).
        gamma: display gamma of the detector response.
        noise: quantum noise standard deviation on the 0..1 scale.
        breast: soft-tissue density of the breast shadows (0 for none).
        arms_in_field: whether the arms overlap the image edges (typical of AP portable films).
    """

    view: str
    sex: str
    age: int
    center: tuple[float, float]
    scale: float
    aspect: float
    rotation: float
    ctr: float
    dome: tuple[float, float]
    lung_width: float
    exposure: float
    gamma: float
    noise: float
    breast: float
    arms_in_field: bool


def sample_patient(rng: np.random.Generator, view: str, noise: float, rotation_deg: float) -> Patient:
    """Draw a patient for ``view`` (``"PA"``, ``"AP"`` or ``"LATERAL"``).

    Args:
        rng: the study's generator.
        view: radiograph projection.
        noise: noise level of the difficulty setting (0..1 image scale).
        rotation_deg: largest absolute in-plane rotation, in degrees.
    """
    sex = "F" if rng.random() < 0.5 else "M"
    ap = view == "AP"
    # AP films are taken at a shorter source distance: the heart projects larger (ctr up to ~0.55 when normal)
    ctr = float(rng.uniform(0.40, 0.48) + (0.04 if ap else 0.0))
    right_dome = float(rng.uniform(0.38, 0.52) + (0.06 if ap else 0.0))
    return Patient(
        view=view,
        sex=sex,
        age=int(rng.integers(19, 95)),
        center=(float(0.5 + rng.normal(0, 0.02)), float(0.5 + rng.normal(0, 0.02))),
        scale=float(rng.uniform(0.31, 0.36) * (0.96 if sex == "F" else 1.0)),
        aspect=float(rng.uniform(1.12, 1.3)),
        rotation=float(np.deg2rad(rng.uniform(-rotation_deg, rotation_deg))),
        ctr=ctr,
        dome=(right_dome, right_dome + float(rng.uniform(0.0, 0.08))),
        lung_width=float(rng.uniform(0.88, 0.95)),
        exposure=float(rng.uniform(0.8, 1.1)),
        gamma=float(rng.uniform(0.8, 1.25)),
        noise=float(noise * rng.uniform(0.7, 1.3)),
        breast=float(rng.uniform(0.12, 0.25)) if sex == "F" and rng.random() < 0.85 else 0.0,
        arms_in_field=bool(ap and rng.random() < 0.6),
    )


class PatientFrame:
    """Patient-frame coordinates of every pixel of a ``(rows, cols)`` image, and the inverse mapping.

    Attributes:
        px, py: ``(rows, cols)`` float32 patient coordinates of the pixel centres.
        x, y: ``(cols,)`` / ``(rows,)`` image-normalised pixel-centre coordinates relative to the thorax centre.
        linear: ``(2, 2)`` matrix with ``(px, py) = linear @ (x, y)``.
    """

    def __init__(self, shape: tuple[int, int], patient: Patient) -> None:
        self.shape = shape
        self.patient = patient
        rows, cols = shape
        y = (np.arange(rows, dtype=np.float32) + 0.5) / rows - patient.center[1]
        x = (np.arange(cols, dtype=np.float32) + 0.5) / cols - patient.center[0]
        c, s = np.cos(patient.rotation), np.sin(patient.rotation)
        self._c, self._s = float(c), float(s)
        # (px, py) = linear @ (x, y): kept so that plane-wave textures can be built from 1-D factors
        self.x, self.y = x.astype(np.float64), y.astype(np.float64)
        self.linear = np.array([[c, s], [-s / patient.aspect, c / patient.aspect]]) / patient.scale
        # broadcasting a column against a row builds the grids without meshgrid copies
        self.px = ((c * x[None, :] + s * y[:, None]) / patient.scale).astype(np.float32)
        self.py = ((-s * x[None, :] + c * y[:, None]) / (patient.scale * patient.aspect)).astype(np.float32)

    def to_pixels(self, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Patient coordinates -> ``(col, row)`` pixel coordinates (continuous, pixel centres at ``k + 0.5``)."""
        p = self.patient
        u = np.asarray(px) * p.scale
        v = np.asarray(py) * p.scale * p.aspect
        x = self._c * u - self._s * v + p.center[0]
        y = self._s * u + self._c * v + p.center[1]
        return x * self.shape[1], y * self.shape[0]

    @property
    def pixels_per_unit(self) -> float:
        """Pixels per patient-frame unit along x."""
        return self.patient.scale * self.shape[1]


@dataclass
class Anatomy:
    """Rendered anatomy of one frontal view.

    Attributes:
        attenuation: ``(rows, cols)`` float32 attenuation map (soft tissue ~1).
        lungs: ``(2, rows, cols)`` float32 soft lung masks, index 0 = patient right, 1 = patient left.
        vessels: ``(rows, cols)`` float32 lung marking texture (already added to ``attenuation``), kept so that a
            pneumothorax can erase it.
        heart: ``(rows, cols)`` float32 soft heart mask.
        geometry: :func:`lung_geometry` of the patient's right and left lung.
    """

    attenuation: np.ndarray
    lungs: np.ndarray
    vessels: np.ndarray
    heart: np.ndarray
    geometry: list[dict[str, np.ndarray]] = field(default_factory=list)


def lung_geometry(frame: PatientFrame, side: int) -> dict[str, np.ndarray]:
    """Boundaries of one lung on the pixel grid; ``side`` -1 = patient right, +1 = patient left.

    Returns:
        dict of ``(rows, cols)`` arrays: ``q`` (lateral coordinate, 0 at the midline), ``medial``, ``lateral``,
        ``apex`` and ``dome`` boundaries, and the soft ``mask``.
    """
    p = frame.patient
    q, py = side * frame.px, frame.py
    medial = 0.11 + 0.05 * sigmoid((py + 0.25) / 0.15)
    lateral = p.lung_width - 0.08 * sigmoid((-0.2 - py) / 0.2)
    apex = -0.93 + 0.6 * ((q - 0.38) / 0.55) ** 2
    top = p.dome[0 if side < 0 else 1]
    dome = top + 0.3 * ((q - 0.45) / 0.5) ** 2
    e = 0.018
    mask = sigmoid((q - medial) / e) * sigmoid((lateral - q) / e) * sigmoid((py - apex) / e) * sigmoid((dome - py) / e)
    return {"q": q, "medial": medial, "lateral": lateral, "apex": apex, "dome": dome, "mask": mask}


def _waves(rng: np.random.Generator, freq: float, terms: int) -> tuple[np.ndarray, np.ndarray]:
    """Random wave vectors ``(T, 2)`` (radians per unit, frequency ~``freq`` cycles per unit) and phases ``(T,)``."""
    angles = rng.uniform(0, np.pi, terms)
    freqs = freq * rng.uniform(0.6, 1.4, terms)
    phases = rng.uniform(0, 2 * np.pi, terms)
    return 2 * np.pi * freqs[:, None] * np.stack([np.cos(angles), np.sin(angles)], 1), phases


def smooth_field(
    rng: np.random.Generator,
    frame: PatientFrame,
    freq: float,
    terms: int = 6,
    linear: np.ndarray | None = None,
    offset: np.ndarray | None = None,
) -> np.ndarray:
    """Band-limited random field on the pixel grid: a sum of random plane waves of ~``freq`` cycles per unit of
    the coordinates ``(u, v) = linear @ (px, py) + offset`` (default: the patient frame itself).

    Every wave is affine in the pixel indices, so ``cos(a x + b y + c) = cos(a x) cos(b y + c) - sin(a x) sin(b y
    + c)``: ``2 T`` outer products of 1-D factors replace ``T`` full-image cosines.
    """
    k, phases = _waves(rng, freq, terms)
    linear = np.eye(2) if linear is None else linear
    offset = np.zeros(2) if offset is None else offset
    kxy = k @ linear @ frame.linear  # (T, 2): radians per unit of the centred image coordinates x, y
    ax = kxy[:, :1] * frame.x[None, :]  # (T, cols)
    by = kxy[:, 1:] * frame.y[None, :] + (k @ offset + phases)[:, None]  # (T, rows)
    cx, sx, cy, sy = (f(t).astype(np.float32) for f, t in ((np.cos, ax), (np.sin, ax), (np.cos, by), (np.sin, by)))
    out = np.zeros((len(frame.y), len(frame.x)), np.float32)
    for k in range(terms):  # a handful of outer products; BLAS matmul is slower at this shape on a busy machine
        out += np.multiply.outer(cy[k], cx[k])
        out -= np.multiply.outer(sy[k], sx[k])
    return out / np.float32(np.sqrt(terms / 2))


def _wave_field(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, freq: float, terms: int) -> np.ndarray:
    """:func:`smooth_field` over arbitrary (non-affine) coordinate maps ``u, v`` (full-image cosines)."""
    k, phases = _waves(rng, freq, terms)
    out = np.zeros_like(u)
    for (ku, kv), ph in zip(k, phases, strict=True):
        out += np.cos(ku * u + kv * v + ph)
    return out / np.sqrt(terms / 2)


def _upsample(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float image to ``shape`` (rows, cols)."""
    img = Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32), mode="F")
    return np.asarray(img.resize((shape[1], shape[0]), Image.Resampling.BILINEAR))


def _band(distance: np.ndarray, half_width: float | np.ndarray, edge: float) -> np.ndarray:
    """Soft band of ``half_width`` around ``distance == 0``."""
    return sigmoid((half_width - np.abs(distance)) / edge)


def _bone(distance: np.ndarray, half_width: float | np.ndarray, edge: float, cortex: float = 0.5) -> np.ndarray:
    """A bone cross-section: a medulla band plus brighter cortical edges."""
    body = _band(distance, half_width, edge)
    rim = np.exp(-(((np.abs(distance) - half_width * 0.85) / (0.35 * half_width + 1e-6)) ** 2))
    return body * (1 - cortex) + rim * cortex * body


def render_frontal(frame: PatientFrame, rng: np.random.Generator) -> Anatomy:
    """Attenuation of a frontal (PA/AP) chest: body, lungs, mediastinum, heart, spine, ribs, clavicles, ...

    Args:
        frame: pixel grid in the patient frame.
        rng: the study's generator (draws textures and small shape variations).
    """
    p = frame.patient
    px, py = frame.px, frame.py
    ax = np.abs(px)
    ap = p.view == "AP"

    # body: neck widening into shoulders, then the chest wall; thickness of an elliptic cylinder
    # chest wall: narrowest at the axillae, widest at the lower ribs
    half = 0.34 + (0.74 + 0.08 * np.clip(1 - ((py - 0.35) / 1.1) ** 2, 0, 1)) * sigmoid((py + 1.0) / 0.07)
    body = np.sqrt(np.clip(1.0 - (px / half) ** 2, 0.0, 1.0)) * sigmoid((half - ax) / 0.015)
    att = 0.75 * body + 0.25 * sigmoid((half - ax) / 0.01)
    if p.arms_in_field:
        arm = np.sqrt(np.clip(1 - ((ax - 1.32) / 0.16) ** 2, 0, 1)) * sigmoid((0.6 - py) / 0.1)
        att += 0.6 * arm
    # shoulders: humeral heads and the acromion above the lateral lung apices
    humerus = np.sqrt(np.clip(1 - ((ax - 1.12) ** 2 + ((py + 0.98) / 1.1) ** 2) / 0.13**2, 0, 1))
    att += 0.15 * humerus

    geo = [lung_geometry(frame, s) for s in (-1, 1)]
    lungs = np.stack([g["mask"] for g in geo])
    air = np.zeros_like(px)
    for g in geo:
        t = np.clip((g["q"] - g["medial"]) / (g["lateral"] - g["medial"]), 0, 1)
        air += g["mask"] * (0.6 + 0.4 * np.sqrt(np.clip(np.sin(np.pi * t), 0, 1)))
    att -= 0.78 * air

    # trachea and main bronchi: the air column down to the carina at py ~ -0.35
    trachea = _band(px - 0.02 * py, 0.045, 0.012) * sigmoid((-0.33 - py) / 0.02) * sigmoid((py + 1.4) / 0.05)
    carina = sigmoid((py + 0.36) / 0.02) * sigmoid((-0.12 - py) / 0.03)
    bronchi = carina * (_band(px + 0.75 * (py + 0.35), 0.03, 0.01) + _band(px - 0.6 * (py + 0.35), 0.03, 0.01))
    att -= 0.22 * np.clip(trachea + bronchi, 0, 1)

    # mediastinum, aortic knob and hila
    att += 0.18 * _band(px - 0.02, 0.16, 0.03) * sigmoid((py + 0.95) / 0.05) * sigmoid((0.2 - py) / 0.1)
    knob = np.clip(1 - ((px - 0.17) ** 2 + (py + 0.45) ** 2) / 0.085**2, 0, 1)
    att += 0.3 * np.sqrt(knob)
    for side in (-1, 1):
        hilum = np.exp(-(((px - side * 0.22) / 0.07) ** 2 + ((py + 0.08) / 0.1) ** 2))
        att += 0.14 * hilum

    # heart: tilted ellipse, 2/3 to the patient's left; width set by the cardiothoracic ratio
    hw = 0.95 * p.ctr
    hx, hy = 0.14 * hw / 0.45, 0.3 + 0.5 * (p.dome[1] - 0.45)
    ca, sa = np.cos(-0.45), np.sin(-0.45)
    u = ((px - hx) * ca - (py - hy) * sa) / (hw * 1.02)
    v = ((px - hx) * sa + (py - hy) * ca) / (0.62 * hw + 0.03)
    r2 = u**2 + v**2
    heart = sigmoid((1 - r2) / 0.04)
    # the heart sits on the diaphragm: below the domes it merges with the equally dense abdomen
    above = sigmoid((p.dome[1] + 0.07 + 0.06 * px - py) / 0.015)
    heart = heart * above
    # the heart displaces aerated lung: it adds back the air it replaces (most where it is thickest), so it
    # reaches soft-tissue density over the lungs and adds little over the mediastinum and abdomen
    att += heart * 0.78 * air * (0.75 + 0.25 * np.sqrt(np.clip(1 - r2, 0, 1))) + 0.05 * heart

    # abdomen below the domes; gastric air bubble under the left hemidiaphragm
    bubble = np.clip(1 - ((px - 0.5) / 0.13) ** 2 - ((py - p.dome[1] - 0.22) / 0.06) ** 2, 0, 1)
    att -= (0.3 if rng.random() < 0.75 else 0.0) * np.sqrt(bubble)

    # spine: vertebral bodies with disc spaces, pedicles; visible through the mediastinum
    period = 0.125
    phase = (py + 1.3) / period
    frac = phase - np.floor(phase)
    vert = _band(px, 0.085, 0.01) * (0.8 + 0.2 * sigmoid((0.42 - np.abs(frac - 0.5)) / 0.02))
    pedicle = np.exp(-(((ax - 0.058) / 0.016) ** 2 + ((frac - 0.35) / 0.14) ** 2))
    spinous = np.exp(-((px / 0.012) ** 2 + ((frac - 0.7) / 0.12) ** 2))
    spine = (vert + 0.6 * pedicle + 0.4 * spinous) * sigmoid((py + 1.6) / 0.05)
    att += 0.28 * spine

    # posterior ribs: arcs rising from the spine then sweeping down laterally; nearest-rib distance keeps it O(HW)
    rib_gap = 0.155 + 0.015 * (1.0 - p.aspect)
    curve = py + rng.uniform(0.25, 0.35) * ax - rng.uniform(0.48, 0.62) * ax**2
    # lower ribs are spaced wider: a power warp of the rib coordinate
    k = 9.0 * np.clip((curve + 0.99) / (9.0 * rib_gap), 0, None) ** 0.88
    idx = np.round(k)
    dist = (k - idx) * rib_gap
    ribs = (idx >= 0) & (idx <= 9)
    thick = 0.026 + 0.002 * idx
    wall = half * 0.97
    posterior = _bone(dist, thick, 0.006) * ribs * sigmoid((ax - 0.07) / 0.01) * sigmoid((wall - ax) / 0.02)
    # anterior ribs: fainter, running down and medially from the chest wall
    curve_a = py - 0.45 * (0.95 - ax) - 0.1 * (0.95 - ax) ** 2
    ka = (curve_a + 0.85) / 0.2
    ia = np.round(ka)
    anterior = (
        _bone((ka - ia) * 0.2, 0.03, 0.01, cortex=0.3)
        * ((ia >= 0) & (ia <= 5))
        * sigmoid((ax - 0.3) / 0.05)
        * sigmoid((wall - ax) / 0.02)
    )
    att += 0.1 * posterior + 0.04 * anterior

    # clavicles: S-shaped from the sternal end up to the acromion
    cl = py + 0.8 + 0.22 * ax - 0.05 * np.sin(2 * np.pi * ax / 0.95)
    clavicle = _bone(cl, 0.034, 0.006) * sigmoid((ax - 0.05) / 0.01) * sigmoid((1.0 - ax) / 0.03)
    att += 0.32 * clavicle
    # scapulae: a faint wedge over the lateral upper lungs (more in AP, where they are not rotated away)
    medial_border = 0.72 + 0.16 * (py + 0.95) / 0.75
    scap = sigmoid((ax - medial_border) / 0.015) * sigmoid((py + 0.95) / 0.03) * sigmoid((-0.22 - py) / 0.04)
    att += (0.12 if ap else 0.05) * scap * sigmoid((wall - ax) / 0.02)

    # breast shadows: soft density with a sharp inferior margin
    if p.breast > 0:
        bottom = 0.66 - 0.3 * ((ax - 0.62) / 0.45) ** 2
        breast = sigmoid((py - bottom + 0.42) / 0.1) * sigmoid((bottom - py) / 0.015) * sigmoid((ax - 0.2) / 0.06)
        att += p.breast * breast

    # lung markings: radial vessel streaks from each hilum, tapering to the periphery, plus parenchymal texture
    # (polar coordinates are not affine in the pixels: drawn on every other pixel, then interpolated)
    sub_px, sub_py = px[::2, ::2], py[::2, ::2]
    streaks = np.zeros_like(sub_px)
    for side in (-1, 1):
        dx, dy = side * sub_px - 0.2, sub_py + 0.06
        r = np.sqrt(dx**2 + dy**2) + 1e-3
        phi = np.arctan2(dy, dx)
        warp = 0.25 * smooth_field(rng, frame, 1.5, 4)[::2, ::2]
        streak = _wave_field(rng, (phi + warp) * 2.0, np.log(r) * 0.3, 6.0, 5)
        streaks += np.clip(streak - 0.9, 0, None) * np.exp(-r / 0.42) * (np.sign(sub_px) == side)
    vessels = _upsample(streaks, px.shape) * lungs.sum(0)
    fine = smooth_field(rng, frame, 9.0, 8)
    vessels = 0.12 * vessels + 0.018 * fine * lungs.sum(0)
    att += vessels
    return Anatomy(
        attenuation=att.astype(np.float32), lungs=lungs.astype(np.float32), vessels=vessels, heart=heart, geometry=geo
    )


def render_lateral(frame: PatientFrame, rng: np.random.Generator) -> np.ndarray:
    """Attenuation of a lateral chest (anterior on the image left): lungs, heart, spine, sternum, domes.

    Here ``px`` is the anteroposterior axis (-1 anterior, +1 posterior).
    """
    px, py = frame.px, frame.py
    half = 0.35 + 0.7 * sigmoid((py + 1.0) / 0.08)
    body = np.sqrt(np.clip(1 - (px / half) ** 2, 0, 1)) * sigmoid((half - np.abs(px)) / 0.015)
    att = 0.8 * body + 0.3 * sigmoid((half - np.abs(px)) / 0.01)
    # both lungs superimposed, from behind the sternum to the posterior sulci; the two hemidiaphragms project
    # as two domes a little apart, lowest posteriorly
    domes = [0.42 + shift + 0.35 * ((px - 0.1) / 0.9) ** 2 - 0.08 * px for shift in (0.0, rng.uniform(0.03, 0.08))]
    apex = -0.9 + 0.5 * (px / 0.6) ** 2
    lung = sigmoid((px + 0.78) / 0.02) * sigmoid((0.82 - px) / 0.02) * sigmoid((py - apex) / 0.02)
    lungs = [lung * sigmoid((d - py) / 0.02) for d in domes]
    lung = 0.5 * (lungs[0] + lungs[1])
    # thicker air column behind the heart and in the posterior sulci than under the sternum
    att -= (0.6 + 0.2 * sigmoid(px / 0.3)) * lung
    # heart: anterior and inferior, resting on the diaphragm, its long axis tilted forward
    ca, sa = np.cos(0.5), np.sin(0.5)
    u = ((px + 0.3) * ca - (py - 0.42) * sa) / 0.45
    v = ((px + 0.3) * sa + (py - 0.42) * ca) / 0.34
    heart = np.clip(1 - u**2 - v**2, 0, 1)
    att += (0.35 + 0.25 * np.sqrt(heart)) * sigmoid((1 - u**2 - v**2) / 0.08) * lung
    # hila: a soft density over the middle of the lung
    att += 0.12 * np.exp(-(((px - 0.1) / 0.16) ** 2 + ((py + 0.05) / 0.14) ** 2))
    trachea = _band(px - 0.25 * (py + 0.4) + 0.05, 0.04, 0.01) * sigmoid((-0.25 - py) / 0.03)
    att -= 0.2 * trachea
    phase = (py + 1.3) / 0.125
    frac = phase - np.floor(phase)
    column = _band(px - 0.72 + 0.08 * py, 0.11, 0.01) * (0.7 + 0.3 * sigmoid((0.4 - np.abs(frac - 0.5)) / 0.02))
    att += 0.3 * column * sigmoid((py + 1.5) / 0.05) * sigmoid((half - np.abs(px) - 0.05) / 0.02)
    att += 0.35 * _band(px + 0.86 - 0.05 * py, 0.025, 0.006) * sigmoid((py + 0.85) / 0.03) * sigmoid((0.5 - py) / 0.05)
    att += 0.02 * smooth_field(rng, frame, 9.0, 8) * lung
    return att.astype(np.float32)


def expose(att: np.ndarray, patient: Patient, rng: np.random.Generator) -> np.ndarray:
    """Detector response of an attenuation map: ``1 - exp(-k A)``, exposure/gamma jitter, heel effect, noise.

    Returns:
        ``(rows, cols)`` float32 in [0, 1], bright = dense (MONOCHROME2 polarity).
    """
    rows, cols = att.shape
    signal = 1.0 - np.exp(-patient.exposure * np.clip(att, 0, None))
    hi = 1.0 - np.exp(-patient.exposure * 1.8)
    img = np.clip(signal / hi, 0, 1) ** patient.gamma
    # anode heel effect: a gentle exposure gradient along one image axis
    heel = np.linspace(-1, 1, rows, dtype=np.float32)[:, None] * rng.uniform(-0.04, 0.04)
    img = img + heel
    img = img + rng.normal(0.0, patient.noise, size=att.shape).astype(np.float32) * np.sqrt(np.clip(img, 0.05, 1))
    return np.clip(img, 0, 1).astype(np.float32)
