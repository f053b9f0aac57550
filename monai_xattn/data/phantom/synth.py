"""One synthetic study: patient, findings, rendered frontal (and optional lateral) image, masks and boxes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from monai_xattn.data.phantom.anatomy import (
    Patient,
    PatientFrame,
    expose,
    render_frontal,
    render_lateral,
    sample_patient,
)
from monai_xattn.data.phantom.findings import (
    DIFFICULTY_SETTINGS,
    PROFILES,
    Finding,
    keep_visible,
    render_distractors,
    render_findings,
    sample_findings,
)
from monai_xattn.data.phantom.sites import SITES

__all__ = ["MAX_WORK_SIZE", "Study", "synthesize_study", "study_rngs"]

#: anatomy is drawn at most at this size and interpolated up (it is smooth); noise is added at full size
MAX_WORK_SIZE = 512


@dataclass
class Study:
    """A rendered study.

    Attributes:
        patient: the frontal view's patient (``patient.view`` is ``PA`` or ``AP``).
        findings: visible finding instances, with ``box`` set on the frontal image.
        image: ``(rows, cols)`` float32 frontal image in [0, 1], bright = dense (MONOCHROME2).
        masks: one boolean ``(rows, cols)`` mask per finding (devices included; only ``has_mask`` ones are GT).
        lateral: ``(rows, cols)`` lateral image or ``None``.
        difficulty: the difficulty it was drawn with.
    """

    patient: Patient
    findings: list[Finding]
    image: np.ndarray
    masks: list[np.ndarray]
    lateral: np.ndarray | None = None
    difficulty: str = "medium"

    @property
    def has_pneumonia(self) -> bool:
        return any(f.kind == "pneumonia" for f in self.findings)

    @property
    def is_normal(self) -> bool:
        return not any(f.kind != "device" for f in self.findings)


def study_rngs(seed_sequence: np.random.SeedSequence) -> dict[str, np.random.Generator]:
    """Independent generators for the image, the report text and the file metadata of one study.

    Separate streams keep each part stable when another changes (a new report phrasing does not move lesions).
    """
    image, text, meta = seed_sequence.spawn(3)
    return {
        "image": np.random.default_rng(image),
        "text": np.random.default_rng(text),
        "meta": np.random.default_rng(meta),
    }


def _resize(arr: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    if arr.shape == (size, size):
        return arr
    if nearest:
        img = Image.fromarray(arr.astype(np.uint8))
        return np.asarray(img.resize((size, size), Image.Resampling.NEAREST)) > 0
    return np.asarray(Image.fromarray(arr.astype(np.float32), mode="F").resize((size, size), Image.Resampling.BILINEAR))


def synthesize_study(
    rng: np.random.Generator,
    size: int = 256,
    difficulty: str = "medium",
    profile: str = "default",
    lateral: bool = False,
    view: str | None = None,
    site: str = "default",
) -> Study:
    """Draw and render one study.

    Args:
        rng: the study's image generator (see :func:`study_rngs`).
        size: output image side in pixels (images are square).
        difficulty: ``easy``, ``medium`` or ``hard`` (lesion contrast and texture, noise, distractors; not sizes).
        profile: finding prevalences (:data:`~.findings.PROFILES`).
        lateral: also render a lateral view.
        view: force ``"PA"`` or ``"AP"`` (default: drawn with the profile's ``ap_share``).
        site: acquisition site, a key of :data:`~.sites.SITES` (exposure, processing, grid, collimation,
            positioning, device prevalence); ``"default"`` is the unprocessed round-1 acquisition.
    """
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")
    cfg = DIFFICULTY_SETTINGS[difficulty] if difficulty in DIFFICULTY_SETTINGS else None
    if cfg is None:
        raise ValueError(f"difficulty must be one of {tuple(DIFFICULTY_SETTINGS)}, got {difficulty!r}")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    if site not in SITES:
        raise ValueError(f"site must be one of {sorted(SITES)}, got {site!r}")
    acquisition = SITES[site]
    view = view or ("AP" if rng.random() < PROFILES[profile]["ap_share"] else "PA")
    findings = sample_findings(rng, difficulty, profile, view, device_rate=acquisition.device_rate)
    patient = sample_patient(rng, view, float(cfg["noise"]), float(cfg["rotation"]) * acquisition.rotation)
    patient = acquisition.adjust_patient(patient, rng)
    for f in findings:
        if f.kind == "cardiomegaly":
            patient = Patient(**{**patient.__dict__, "ctr": f.extra["ctr"] + (0.03 if view == "AP" else 0.0)})
    work = min(size, MAX_WORK_SIZE)
    frame = PatientFrame((work, work), patient)
    anatomy = render_frontal(frame, rng)
    masks = render_findings(frame, anatomy, findings, rng)
    render_distractors(frame, anatomy, rng, float(cfg["p_overlap"]))
    att = _resize(anatomy.attenuation, size)
    masks = [_resize(m, size, nearest=True) for m in masks]
    image = acquisition.process(expose(att, patient, rng), rng)
    kept, kept_masks = keep_visible(findings, masks)
    lat = None
    if lateral:
        lat_patient = Patient(**{**patient.__dict__, "view": "LATERAL", "rotation": 0.0, "breast": 0.0})
        lat_frame = PatientFrame((work, work), lat_patient)
        lat = expose(_resize(render_lateral(lat_frame, rng), size), lat_patient, rng)
    return Study(patient=patient, findings=kept, image=image, masks=kept_masks, lateral=lat, difficulty=difficulty)
