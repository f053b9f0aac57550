"""Structured findings of a synthetic study, how they are drawn, and their ground-truth boxes and masks.

A :class:`Finding` is one instance (one opacity, one effusion, one device); multifocal pneumonia or bilateral
edema are several instances sharing a ``group``. :func:`sample_findings` draws them from a difficulty setting
and a dataset profile; :func:`render_findings` adds them to an :class:`~.anatomy.Anatomy` and returns one mask
per instance, from which the boxes are taken.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from monai_xattn.data.phantom.anatomy import Anatomy, PatientFrame, sigmoid, smooth_field

__all__ = [
    "DIFFICULTIES",
    "DIFFICULTY_SETTINGS",
    "FINDING_KINDS",
    "OPACITY_TYPES",
    "LOBES",
    "PROFILES",
    "AREA_QUANTILES",
    "FOCI_SHARES",
    "draw_area",
    "Finding",
    "sample_findings",
    "render_findings",
    "render_distractors",
    "mask_to_box",
    "keep_visible",
]

DIFFICULTIES = ("easy", "medium", "hard")

#: per difficulty: lesion attenuation range, noise, rotation, distractor rates, and how often the report hedges a
#: real pneumonia or carries a typo. Difficulty never changes lesion or mask *sizes*: those follow the real
#: datasets (:data:`AREA_QUANTILES`) at every level.
DIFFICULTY_SETTINGS: dict[str, dict[str, float | tuple[float, float]]] = {
    "easy": {"amp": (0.5, 0.75), "noise": 0.012, "rotation": 2.0, "p_device": 0.1,
             "p_nodule": 0.03, "p_mimic": 0.05, "p_overlap": 0.1, "p_hedge": 0.0, "p_typo": 0.0},
    "medium": {"amp": (0.24, 0.42), "noise": 0.022, "rotation": 4.0, "p_device": 0.3,
               "p_nodule": 0.12, "p_mimic": 0.2, "p_overlap": 0.35, "p_hedge": 0.15, "p_typo": 0.1},
    "hard": {"amp": (0.07, 0.16), "noise": 0.035, "rotation": 7.0, "p_device": 0.55,
             "p_nodule": 0.25, "p_mimic": 0.4, "p_overlap": 0.7, "p_hedge": 0.3, "p_typo": 0.25},
}  # fmt: skip

FINDING_KINDS = (
    "pneumonia", "effusion", "cardiomegaly", "atelectasis", "edema", "pneumothorax", "nodule", "device",
)  # fmt: skip
OPACITY_TYPES = ("patchy", "consolidation", "ground-glass", "interstitial")
#: (side, zone) -> lobe; the lingula is the left lung's middle zone
LOBES = {
    ("right", "upper"): "RUL", ("right", "middle"): "RML", ("right", "lower"): "RLL",
    ("left", "upper"): "LUL", ("left", "middle"): "lingula", ("left", "lower"): "LLL",
}  # fmt: skip
DEVICES = ("endotracheal tube", "nasogastric tube", "central venous catheter", "pacemaker", "ecg leads")

#: per dataset profile: ``normal`` = share of normal studies, then the probability of each finding in an abnormal
#: study; ``ap_share`` = share of AP (portable) frontal views; ``pneumonia_ap_ratio`` = how much likelier a pneumonia
#: is on an AP film than on a PA one (sicker patients are filmed portable: RSNA's positives are 78 % AP against
#: 46 % of all its images, a risk ratio of about 4; NIH's pneumonia boxes 58 % AP against 40 %, about 2);
#: ``areas`` = the :data:`AREA_QUANTILES` row its pneumonia boxes follow, ``areas_of`` = which boxes follow it:
#: ``each`` (RSNA lists every opacity) or ``largest`` (ChestX-ray8 lists one box per image and label, so its
#: table describes the largest focus; the others are drawn smaller). Prevalences are set so that the written
#: positive shares match the real datasets where they are known (RSNA 0.225, SIIM 0.22; see
#: ``benchmarks/phantom_realism.py``).
_DEFAULT_PROFILE = {"normal": 0.35, "pneumonia": 0.6, "effusion": 0.25, "cardiomegaly": 0.2, "atelectasis": 0.2,
                    "edema": 0.1, "pneumothorax": 0.08, "ap_share": 0.4, "pneumonia_ap_ratio": 2.0, "areas": "rsna",
                    "areas_of": "each"}  # fmt: skip
# MIMIC-CXR (and CheXpert) are hospital archives: more effusion, edema and atelectasis, more portable AP films
_HOSPITAL_PROFILE = {**_DEFAULT_PROFILE, "normal": 0.3, "effusion": 0.3, "atelectasis": 0.25, "edema": 0.15}
PROFILES: dict[str, dict] = {
    "default": _DEFAULT_PROFILE,
    "nih": {**_DEFAULT_PROFILE, "areas": "nih", "areas_of": "largest"},
    "mimic": {**_HOSPITAL_PROFILE, "ap_share": 0.65},
    "chexpert": {**_HOSPITAL_PROFILE, "ap_share": 0.85},
    "rsna": {**_DEFAULT_PROFILE, "normal": 0.33, "pneumonia": 0.33, "effusion": 0.2, "cardiomegaly": 0.15,
             "atelectasis": 0.25, "edema": 0.05, "pneumothorax": 0.05, "ap_share": 0.46, "pneumonia_ap_ratio": 4.0},
    "siim": {**_DEFAULT_PROFILE, "normal": 0.3, "pneumonia": 0.2, "effusion": 0.15, "cardiomegaly": 0.1,
             "atelectasis": 0.15, "edema": 0.05, "pneumothorax": 0.34},
    "covid": {**_DEFAULT_PROFILE, "normal": 0.15, "pneumonia": 0.95, "effusion": 0.05, "cardiomegaly": 0.05,
              "atelectasis": 0.05, "edema": 0.05, "pneumothorax": 0.02, "ap_share": 0.5, "pneumonia_ap_ratio": 1.0},
    # MS-CXR holds only images with an annotated finding
    "ms-cxr": {**_DEFAULT_PROFILE, "normal": 0.0, "pneumothorax": 0.1, "ap_share": 0.65, "pneumonia_ap_ratio": 1.0},
}  # fmt: skip

#: real annotation sizes, fraction of the image area, (p10, p50, p90), measured on the real files (REFERENCE §9):
#: ``nih`` = ChestX-ray8 ``BBox_List_2017.csv`` Pneumonia boxes (120), ``rsna`` = RSNA ``stage_2_train_labels.csv``
#: boxes (9,555), ``siim`` = SIIM ``train-rle.csv`` union pneumothorax mask per positive image (2,669)
AREA_QUANTILES: dict[str, tuple[float, float, float]] = {
    "nih": (0.028, 0.057, 0.216),
    "rsna": (0.022, 0.062, 0.145),
    "siim": (0.0019, 0.0084, 0.033),
}
#: pneumonia boxes per positive image, shares of 1 / 2 / 3 / 4 (RSNA: 2,614 / 3,266 / 119 / 13 of 6,012 images)
FOCI_SHARES = (2614 / 6012, 3266 / 6012, 119 / 6012, 13 / 6012)

_ZONE_PY = {"upper": (-0.72, -0.42), "middle": (-0.32, 0.0), "lower": (0.08, 0.6)}


@dataclass
class Finding:
    """One finding instance.

    Attributes:
        kind: one of :data:`FINDING_KINDS`.
        side: ``"right"``, ``"left"`` (patient side) or ``None`` (central: heart, most devices).
        zone: ``"upper"``, ``"middle"``, ``"lower"`` or ``None``.
        lobe: ``RUL``, ``RML``, ``RLL``, ``LUL``, ``lingula``, ``LLL`` or ``None``.
        opacity: opacity type of a pneumonia (or pneumonia-like atelectasis): one of :data:`OPACITY_TYPES`.
        distribution: ``"single"``, ``"multifocal"`` or ``"bilateral"`` (pneumonia, edema; effusion and
            pneumothorax: single or bilateral). Once rendered it describes the instances that are visible (see
            :func:`keep_visible`).
        severity: ``"small"``/``"moderate"``/``"large"`` (effusion, pneumothorax) or ``"mild"``/``"moderate"``/
            ``"severe"`` (pneumonia, cardiomegaly, edema).
        retrocardiac: a left lower lobe lesion behind the heart.
        device: device name for ``kind == "device"``.
        group: instances of one finding share it (both lungs of an edema, the foci of a multifocal pneumonia).
        amplitude: added attenuation at the lesion core.
        center, radii, angle: lesion ellipse in the patient frame.
        box: ``[x0, y0, x1, y1]`` pixels, x = column, set by rendering (``None`` when nothing is visible).
        has_mask: whether the finding is a region whose mask is ground truth (devices are not).
    """

    kind: str
    side: str | None = None
    zone: str | None = None
    lobe: str | None = None
    opacity: str | None = None
    distribution: str | None = None
    severity: str | None = None
    retrocardiac: bool = False
    device: str | None = None
    group: int = 0
    amplitude: float = 0.0
    center: tuple[float, float] = (0.0, 0.0)
    radii: tuple[float, float] = (0.0, 0.0)
    angle: float = 0.0
    box: list[float] | None = None
    has_mask: bool = True
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """The ground-truth record of this instance (no geometry internals)."""
        out = {
            "type": self.kind,
            "side": self.side,
            "zone": self.zone,
            "lobe": self.lobe,
            "opacity": self.opacity,
            "distribution": self.distribution,
            "severity": self.severity,
            "retrocardiac": self.retrocardiac,
            "group": self.group,
            "box": self.box,
        }
        if self.device is not None:
            out["device"] = self.device
        return out


def draw_area(
    rng: np.random.Generator, quantiles: tuple[float, float, float], u_max: float | None = None
) -> tuple[float, float]:
    """Draw an area from a distribution given by its p10 / p50 / p90: piecewise log-linear in the quantile, the
    tails continuing the neighbouring slope to p0 and p100.

    Args:
        rng: the study's generator.
        quantiles: p10, p50, p90.
        u_max: draw below this quantile only (the smaller foci of an image whose largest follows the table).

    Returns:
        ``(area, u)``: the area (same unit as ``quantiles``) and its quantile ``u`` in [0, 1].
    """
    p10, p50, p90 = np.log(quantiles)
    knots_u = (0.0, 0.1, 0.5, 0.9, 1.0)
    knots_log = (p10 - 0.25 * (p50 - p10), p10, p50, p90, p90 + 0.25 * (p90 - p50))
    u = float(rng.random()) * (1.0 if u_max is None else u_max)
    return float(np.exp(np.interp(u, knots_u, knots_log))), u


def _side_sign(side: str) -> int:
    return -1 if side == "right" else 1


def _pneumonia_site(rng: np.random.Generator, side: str, zone: str, retro: bool) -> tuple[float, float]:
    """A lesion centre (px, py) inside the ``side`` lung's ``zone``."""
    if retro:
        q, py = rng.uniform(0.17, 0.3), rng.uniform(0.18, 0.4)
    else:
        q = rng.uniform(0.32, 0.75)
        lo, hi = _ZONE_PY[zone]
        py = rng.uniform(lo, hi)
        if zone == "upper":  # the apex narrows: keep upper-zone foci away from the chest wall
            q = min(q, 0.62)
    return float(_side_sign(side) * q), float(py)


def sample_findings(
    rng: np.random.Generator, difficulty: str, profile: str = "default", view: str = "PA", device_rate: float = 1.0
) -> list[Finding]:
    """Draw the findings of one study (``[]`` for a normal study without devices).

    Args:
        rng: the study's generator.
        difficulty: one of :data:`DIFFICULTIES`.
        profile: finding prevalences, a key of :data:`PROFILES`.
        view: frontal projection; AP (portable) studies get more devices.
        device_rate: multiplier of the support-device prevalence (the acquisition site's).
    """
    if difficulty not in DIFFICULTY_SETTINGS:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    cfg, prev = DIFFICULTY_SETTINGS[difficulty], PROFILES[profile]
    amp_lo, amp_hi = cfg["amp"]
    box_areas = AREA_QUANTILES[prev["areas"]]
    # the view shifts pneumonia risk at a constant marginal: p_AP / p_PA = ratio, ap * p_AP + (1 - ap) * p_PA = p
    ratio, ap = prev["pneumonia_ap_ratio"], prev["ap_share"]
    p_pneumonia = min(1.0, prev["pneumonia"] * (ratio if view == "AP" else 1.0) / (ap * ratio + 1 - ap))

    def lesion_radii(area: float) -> tuple[float, float]:
        # first guess for a target box area (fraction of the image); render_findings fits it to the lungs
        a = float(np.sqrt(area / 0.52))
        return a, a * float(rng.uniform(0.75, 1.3))

    findings: list[Finding] = []
    group = 0

    def new_group() -> int:
        nonlocal group
        group += 1
        return group

    normal = rng.random() < prev["normal"]
    if not normal:
        kinds = [
            k
            for k in ("pneumonia", "effusion", "cardiomegaly", "atelectasis", "edema", "pneumothorax")
            if rng.random() < (p_pneumonia if k == "pneumonia" else prev[k])
        ]
        if not kinds:
            # not pneumonia: its rate and view dependence are set by the profile alone
            kinds = [str(rng.choice(["effusion", "atelectasis", "cardiomegaly"]))]
        if "pneumonia" in kinds:
            covid = profile == "covid"
            n_foci = 2 if covid else 1 + int(rng.choice(4, p=FOCI_SHARES))
            opacity = (
                "ground-glass"
                if covid and rng.random() < 0.7
                else str(rng.choice(OPACITY_TYPES, p=[0.35, 0.35, 0.15, 0.15]))
            )
            g = new_group()
            if n_foci == 1:
                sides = [str(rng.choice(["right", "left"]))]
            elif n_foci == 2:  # most two-box images have one opacity in each lung
                sides = ["right", "left"] if covid or rng.random() < 0.8 else [str(rng.choice(["right", "left"]))] * 2
            elif n_foci == 3:
                sides = [str(rng.choice(["right", "left"]))] * 3
            else:
                sides = ["right", "left", "right", "left"]
            dist = "single" if n_foci == 1 else ("bilateral" if len(set(sides)) > 1 else "multifocal")
            zones = list(rng.permutation(["upper", "middle", "lower"]))
            severity, first_u = None, 1.0
            for k, side in enumerate(sides):
                zone = (
                    "lower"
                    if covid or (dist == "single" and rng.random() < 0.5)
                    else str(zones[(k // 2 if n_foci == 4 else k) % 3])
                )
                retro = side == "left" and zone == "lower" and rng.random() < 0.25
                if prev["areas_of"] == "largest":  # the first focus is the largest and follows the table
                    area, u = draw_area(rng, box_areas, u_max=first_u)
                    first_u = u if k == 0 else first_u
                else:
                    area, u = draw_area(rng, box_areas)
                # severity follows the extent (of the first focus)
                severity = severity or ("mild" if u < 0.4 else "moderate" if u < 0.85 else "severe")
                findings.append(
                    Finding(
                        kind="pneumonia",
                        side=side,
                        zone=zone,
                        lobe=LOBES[(side, zone)],
                        opacity=opacity,
                        distribution=dist,
                        severity=severity,
                        retrocardiac=retro,
                        group=g,
                        amplitude=float(rng.uniform(amp_lo, amp_hi)) * (0.7 if opacity == "ground-glass" else 1.0),
                        center=_pneumonia_site(rng, side, zone, retro),
                        radii=lesion_radii(area),
                        angle=float(rng.uniform(0, np.pi)),
                        extra={"box_area": area},
                    )
                )
        if "effusion" in kinds:
            g = new_group()
            sides = ["right", "left"] if rng.random() < 0.3 else [str(rng.choice(["right", "left"]))]
            severity = str(rng.choice(["small", "moderate", "large"], p=[0.5, 0.35, 0.15]))
            for side in sides:
                findings.append(
                    Finding(
                        kind="effusion",
                        side=side,
                        zone="lower",
                        severity=severity,
                        group=g,
                        distribution="bilateral" if len(sides) == 2 else "single",
                        amplitude=float(rng.uniform(0.45, 0.7)),
                    )
                )
        if "cardiomegaly" in kinds:
            severity = str(rng.choice(["mild", "moderate", "severe"], p=[0.5, 0.35, 0.15]))
            findings.append(
                Finding(
                    kind="cardiomegaly",
                    severity=severity,
                    group=new_group(),
                    extra={
                        "ctr": {"mild": 0.56, "moderate": 0.62, "severe": 0.68}[severity]
                        + float(rng.uniform(-0.015, 0.015))
                    },
                )
            )
        if "atelectasis" in kinds or rng.random() < cfg["p_mimic"]:
            # plate-like bands, or (the distractor) a patchy lower-lobe opacity that looks like pneumonia
            side = str(rng.choice(["right", "left"]))
            mimic = rng.random() < 0.5
            # a look-alike must not be told apart by its size: it follows the pneumonia boxes' distribution
            mimic_area = draw_area(rng, box_areas)[0] if mimic else None
            findings.append(
                Finding(
                    kind="atelectasis",
                    side=side,
                    zone="lower",
                    lobe=LOBES[(side, "lower")],
                    opacity="patchy" if mimic else None,
                    severity="mild",
                    group=new_group(),
                    amplitude=float(rng.uniform(amp_lo, amp_hi)) * (1.0 if mimic else 1.2),
                    center=(float(_side_sign(side) * rng.uniform(0.35, 0.65)), float(rng.uniform(0.2, 0.45))),
                    radii=lesion_radii(mimic_area)
                    if mimic
                    else (float(rng.uniform(0.16, 0.28)), float(rng.uniform(0.022, 0.035))),
                    angle=float(rng.uniform(-0.25, 0.25)),
                    extra={"box_area": mimic_area} if mimic else {},
                )
            )
        if "edema" in kinds:
            g = new_group()
            severity = str(rng.choice(["mild", "moderate", "severe"], p=[0.4, 0.4, 0.2]))
            for side in ("right", "left"):
                findings.append(
                    Finding(
                        kind="edema",
                        side=side,
                        distribution="bilateral",
                        severity=severity,
                        group=g,
                        amplitude=float(rng.uniform(0.12, 0.25)),
                    )
                )
        if "pneumothorax" in kinds:
            g = new_group()
            sides = ["right", "left"] if rng.random() < 0.12 else [str(rng.choice(["right", "left"]))]
            # the union mask of the image follows SIIM's mask areas; a bilateral one shares it between the sides
            area, _ = draw_area(rng, AREA_QUANTILES["siim"])
            severity = "small" if area < 0.006 else ("moderate" if area < 0.02 else "large")
            for side in sides:
                findings.append(
                    Finding(
                        kind="pneumothorax",
                        side=side,
                        zone="upper",
                        severity=severity,
                        group=g,
                        distribution="bilateral" if len(sides) == 2 else "single",
                        extra={"mask_area": area / len(sides)},
                    )
                )
    if rng.random() < cfg["p_nodule"]:
        side = str(rng.choice(["right", "left"]))
        zone = str(rng.choice(["upper", "middle", "lower"]))
        r = float(rng.uniform(0.025, 0.05))
        findings.append(
            Finding(
                kind="nodule",
                side=side,
                zone=zone,
                lobe=LOBES[(side, zone)],
                group=new_group(),
                amplitude=float(rng.uniform(0.3, 0.5)),
                center=_pneumonia_site(rng, side, zone, False),
                radii=(r, r),
            )
        )
    p_device = min(1.0, cfg["p_device"] * (1.8 if view == "AP" else 1.0) * device_rate)
    if rng.random() < p_device:
        for name in rng.choice(DEVICES, size=int(rng.integers(1, 3)), replace=False):
            side = "right" if name == "central venous catheter" else ("left" if name == "pacemaker" else None)
            findings.append(Finding(kind="device", device=str(name), side=side, group=new_group(), has_mask=False))
    return findings


def mask_to_box(mask: np.ndarray) -> list[float] | None:
    """Tight ``[x0, y0, x1, y1]`` (x = column, end exclusive) of a ``(rows, cols)`` mask; ``None`` if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if not len(rows):
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]


def keep_visible(findings: list[Finding], masks: list[np.ndarray]) -> tuple[list[Finding], list[np.ndarray]]:
    """Set every finding's ``box`` from its mask, drop those with nothing visible, and describe each group by the
    instances that remain.

    Lesion sites are drawn in the patient frame before the patient's lungs are known, so a focus can fall
    wholly outside its lung (a lower-zone focus below the diaphragm) and render to nothing. The report and the
    sidecar must describe what the image shows: a bilateral pneumonia that keeps one focus is a single one, a
    multifocal pneumonia keeps ``multifocal`` only with two or more foci, a bilateral effusion with one visible
    side is unilateral.

    Args:
        findings: the drawn findings, in the order :func:`render_findings` returned ``masks``.
        masks: one boolean ``(rows, cols)`` mask per finding, in the written image's frame.

    Returns:
        The visible findings (updated in place) and their masks.
    """
    kept, kept_masks = [], []
    for f, m in zip(findings, masks, strict=True):
        f.box = mask_to_box(m)
        if f.box is not None:  # a lesion clipped away entirely is not a finding
            kept.append(f)
            kept_masks.append(m)
    if len(kept) < len(findings):
        groups: dict[int, list[Finding]] = {}
        for f in kept:
            groups.setdefault(f.group, []).append(f)
        for members in groups.values():
            if members[0].distribution is None:
                continue
            if len(members) == 1:
                distribution = "single"
            else:
                distribution = "bilateral" if len({f.side for f in members}) > 1 else "multifocal"
            for f in members:
                f.distribution = distribution
    return kept, kept_masks


def _ellipse_level(frame: PatientFrame, f: Finding) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(level, u, v)``: 1 - normalised squared radius of the finding's ellipse, and its local coordinates."""
    c, s = np.cos(f.angle), np.sin(f.angle)
    dx, dy = frame.px - f.center[0], frame.py - f.center[1]
    u = (c * dx + s * dy) / f.radii[0]
    v = (-s * dx + c * dy) / f.radii[1]
    return 1.0 - (u**2 + v**2), u, v


def _opacity(frame: PatientFrame, f: Finding, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Density field and region of a pneumonia-like lesion of type ``f.opacity``."""
    level, _, _ = _ellipse_level(frame, f)
    # textures live in the lesion's own (u, v) = (rotated, radius-scaled) coordinates: an affine map of (px, py)
    c, s = np.cos(f.angle), np.sin(f.angle)
    linear = np.array([[c, s], [-s, c]]) / np.array(f.radii)[:, None]
    offset = -linear @ np.array(f.center)

    def field(freq: float, terms: int, zoom: float = 1.0) -> np.ndarray:
        return smooth_field(rng, frame, freq, terms, linear * zoom, offset * zoom)

    level = level + 0.35 * field(0.35, 5)
    shape = sigmoid(level / 0.12)
    if f.opacity == "consolidation":
        bronchi = np.abs(field(0.6, 3)) < 0.06
        dens = shape * (0.95 - 0.2 * bronchi)
    elif f.opacity == "ground-glass":
        shape = sigmoid(level / 0.3)
        dens = 0.8 * shape
    elif f.opacity == "interstitial":
        # reticulation: thin bright lines along the zero set of a fine random field, over a faint haze
        net = np.exp(-((field(1.6, 6, zoom=2.5) / 0.25) ** 2))
        dens = shape * (0.45 + 0.6 * net)
    else:  # patchy: confluent blotches
        blotches = field(0.7, 3) + 0.5 * field(1.4, 3)
        dens = shape * np.clip(0.65 + 0.4 * blotches, 0, 1.1)
    return dens, shape > 0.5


#: box / mask areas are fitted to their drawn targets within this ratio, in at most this many renderings
_FIT_TOLERANCE, _FIT_STEPS = 1.12, 4


def _box_area(mask: np.ndarray) -> float:
    box = mask_to_box(mask)
    return 0.0 if box is None else (box[2] - box[0]) * (box[3] - box[1]) / mask.size


def _fit_opacity(
    frame: PatientFrame, f: Finding, rng: np.random.Generator, lung: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Render an opacity whose tight box (inside ``lung``) has the area drawn for it, ``f.extra["box_area"]``.

    The lung clips a lesion by an amount that depends on where it sits, so the radii are rescaled and the lesion
    re-rendered (same texture: one child generator) until the box is within :data:`_FIT_TOLERANCE` of the target
    or the steps run out (a target larger than the lung allows keeps the closest). ``f.radii`` is updated.

    Returns:
        ``(density, region)``: ``(rows, cols)`` lesion density and its boolean mask inside the lung.
    """
    seed = int(rng.integers(2**63))
    target = f.extra.get("box_area")
    radii = np.array(f.radii)
    best: tuple[float, np.ndarray, np.ndarray, tuple[float, float]] | None = None
    for _ in range(_FIT_STEPS if target else 1):
        f.radii = (float(radii[0]), float(radii[1]))
        dens, region = _opacity(frame, f, np.random.default_rng(seed))
        region = region & lung
        if not target:
            return dens, region
        area = _box_area(region)
        error = abs(np.log(max(area, 1e-6) / target))
        if best is None or error < best[0]:
            best = (error, dens, region, f.radii)
        if error < np.log(_FIT_TOLERANCE) or radii.max() > 1.5:
            break
        radii = radii * float(np.clip(np.sqrt(target / max(area, 1e-4)), 0.5, 2.0))
    _, dens, region, f.radii = best
    return dens, region


def _fit_pneumothorax(frame: PatientFrame, g: dict, target: float | None, severity: str) -> np.ndarray:
    """Soft ``(rows, cols)`` pneumothorax region of one lung whose mask covers ``target`` of the image.

    The air rim runs along the lateral wall and over the apex with a depth (patient units) fitted to the target
    area (the area grows about linearly with the depth); without a target the depth follows ``severity``.
    """
    depth = {"small": 0.06, "moderate": 0.12, "large": 0.22}[severity] if not target else 0.06 * target / 0.009
    best = None
    for _ in range(2 * _FIT_STEPS if target else 1):  # cheap: no texture to redraw
        lateral_depth = depth * sigmoid((0.15 - frame.py) / 0.15)
        rim = np.maximum(
            sigmoid((lateral_depth - (g["lateral"] - g["q"])) / 0.008),
            sigmoid((depth * 0.8 - (frame.py - g["apex"])) / 0.008),
        )
        region = rim * g["mask"]
        if not target:
            return region
        area = float((region > 0.5).mean())
        error = abs(np.log(max(area, 1e-6) / target))
        if best is None or error < best[0]:
            best = (error, region)
        if error < np.log(_FIT_TOLERANCE):
            break
        depth *= float(np.clip(target / max(area, 1e-5), 0.4, 2.5))
    return best[1]


def _draw_devices(frame: PatientFrame, f: Finding, rng: np.random.Generator, domes: tuple[float, float]) -> np.ndarray:
    """Rasterise one device (PIL polylines) -> ``(rows, cols)`` density."""
    rows, cols = frame.shape
    ppu = frame.pixels_per_unit
    canvas = Image.new("F", (cols, rows), 0.0)
    draw = ImageDraw.Draw(canvas)

    def line(points, width_units, value):
        xs, ys = frame.to_pixels(np.array([p[0] for p in points]), np.array([p[1] for p in points]))
        draw.line(
            list(zip(xs.tolist(), ys.tolist(), strict=True)),
            fill=float(value),
            width=max(1, round(width_units * ppu)),
            joint="curve",
        )

    j = rng.normal(0, 0.02, size=8)
    name = f.device
    if name == "endotracheal tube":
        pts = [(0.02 + j[0], -1.7), (0.01 + j[1], -1.1), (0.0 + j[2], -0.5 + j[3])]
        line(pts, 0.05, 0.12)
        line(pts, 0.012, 0.55)
    elif name == "nasogastric tube":
        pts = [
            (-0.03, -1.7),
            (-0.04 + j[0], -0.8),
            (0.0 + j[1], 0.1),
            (0.2, domes[1] + 0.05),
            (0.42 + j[2], domes[1] + 0.2),
        ]
        line(pts, 0.016, 0.5)
    elif name == "central venous catheter":
        pts = [(-0.5 + j[0], -1.35), (-0.32, -0.98), (-0.14 + j[1], -0.62), (-0.07 + j[2], -0.22 + j[3])]
        line(pts, 0.014, 0.5)
    elif name == "pacemaker":
        gx, gy = 0.55 + j[0], -0.72 + j[1]
        line([(gx - 0.11, gy), (gx + 0.11, gy)], 0.15, 1.4)
        line([(gx - 0.05, gy), (0.15, -0.78), (-0.04, -0.4), (0.04, 0.15), (0.18 + j[2], 0.32)], 0.014, 0.6)
    else:  # ECG leads: electrodes (rings) and wires running to the image edge
        for _ in range(3):
            ex, ey = rng.uniform(-0.9, 0.9), rng.uniform(-0.8, 0.5)
            cx, cy = frame.to_pixels(np.array(ex), np.array(ey))
            r = 0.045 * ppu
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=0.55, width=max(1, round(r / 3)))
            line([(ex, ey), (ex + rng.uniform(-0.3, 0.3), ey - 0.4), (ex * 1.5, -1.8)], 0.01, 0.4)
    return np.asarray(canvas, dtype=np.float32)


def render_findings(
    frame: PatientFrame, anatomy: Anatomy, findings: list[Finding], rng: np.random.Generator
) -> list[np.ndarray]:
    """Add every finding to ``anatomy.attenuation`` in place; return one boolean ``(rows, cols)`` mask per finding.

    Pneumothorax also erases the lung markings it covers. Findings whose visible region came out empty get
    an empty mask (the caller drops them).
    """
    att = anatomy.attenuation
    geo = {"right": anatomy.geometry[0], "left": anatomy.geometry[1]}
    domes = frame.patient.dome
    masks = []
    for f in findings:
        lung = anatomy.lungs[0 if f.side == "right" else 1] if f.side else anatomy.lungs.max(0)
        if f.kind == "pneumonia" or (f.kind == "atelectasis" and f.opacity):
            dens, region = _fit_opacity(frame, f, rng, lung > 0.5)
            att += f.amplitude * dens * lung
            masks.append(region)
        elif f.kind in ("atelectasis", "nodule"):
            level, _, _ = _ellipse_level(frame, f)
            shape = sigmoid(level / (0.3 if f.kind == "atelectasis" else 0.15)) * lung
            att += f.amplitude * shape
            masks.append(shape > 0.5)
        elif f.kind == "effusion":
            g = geo[f.side]
            h = {"small": 0.1, "moderate": 0.28, "large": 0.5}[f.severity]
            t = np.clip((g["q"] - g["medial"]) / (g["lateral"] - g["medial"]), 0, 1)
            costophrenic = domes[0 if f.side == "right" else 1] + 0.2
            top = costophrenic - h * (0.35 + 0.65 * t)
            region = (
                sigmoid((frame.py - top) / 0.02)
                * sigmoid((g["q"] - g["medial"] - 0.04) / 0.02)
                * sigmoid((g["lateral"] + 0.02 - g["q"]) / 0.015)
                * sigmoid((g["dome"] + 0.06 - frame.py) / 0.02)
            )
            # fluid replaces aerated lung: no denser than the soft tissue around it
            att += f.amplitude * region * np.maximum(lung, sigmoid((g["dome"] - frame.py) / 0.01))
            masks.append(region > 0.5)
        elif f.kind == "cardiomegaly":
            masks.append(anatomy.heart > 0.5)
        elif f.kind == "edema":
            g = geo[f.side]
            dx, dy = g["q"] - 0.28, frame.py + 0.02
            haze = np.exp(-((dx / 0.32) ** 2 + (dy / 0.42) ** 2)) * lung
            kerley = (np.cos(2 * np.pi * frame.py / 0.035) > 0.8) * sigmoid((g["q"] - g["lateral"] + 0.12) / 0.02)
            kerley = kerley * sigmoid((frame.py - 0.1) / 0.05) * lung
            att += f.amplitude * (haze + 0.5 * kerley)
            masks.append(haze > 0.5)
        elif f.kind == "pneumothorax":
            g = geo[f.side]
            region = _fit_pneumothorax(frame, g, f.extra.get("mask_area"), f.severity)
            line = np.exp(-(((region - 0.5) / 0.25) ** 2)) * (g["mask"] > 0.5)
            att -= region * (anatomy.vessels + 0.15)
            att += 0.12 * line
            masks.append(region > 0.5)
        elif f.kind == "device":
            dens = _draw_devices(frame, f, rng, domes)
            att += dens
            masks.append(dens > 0.05)
        else:
            raise ValueError(f"unknown finding kind {f.kind!r}")
    return masks


def render_distractors(frame: PatientFrame, anatomy: Anatomy, rng: np.random.Generator, p_overlap: float) -> None:
    """Bright overlaps that are not findings: nipple shadows (nodule look-alikes), skin folds, jewellery."""
    att, px, py = anatomy.attenuation, frame.px, frame.py
    if rng.random() < p_overlap:
        y0, r = rng.uniform(0.25, 0.45), rng.uniform(0.025, 0.04)
        for side in (-1, 1):
            att += 0.12 * sigmoid((1 - ((px - side * 0.62) ** 2 + (py - y0) ** 2) / r**2) / 0.2)
    if rng.random() < p_overlap:
        x0 = rng.choice([-1, 1]) * rng.uniform(0.7, 0.9)
        fold = px - x0 - 0.08 * np.sin(py * 2.5 + rng.uniform(0, 6))
        att += 0.07 * sigmoid(-fold * np.sign(x0) / 0.01) * sigmoid((fold * np.sign(x0) + 0.05) / 0.01) * (py > -0.6)
    if rng.random() < p_overlap / 2:
        ring = np.abs(np.sqrt((px - rng.uniform(-0.2, 0.2)) ** 2 + (py + 0.9) ** 2) - 0.05)
        att += 0.6 * np.exp(-((ring / 0.01) ** 2))
