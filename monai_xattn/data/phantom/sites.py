"""Acquisition sites: each phantom layout comes from a site with its own acquisition and image processing.

Real datasets differ in more than their file formats: NIH ChestX-ray14 (and RSNA and SIIM, which are drawn from
it) are processed 8-bit images from one hospital's PACS; MIMIC-CXR (and MS-CXR, built on it) is an ICU-heavy
archive of raw-ish detector DICOMs, many of them portable AP films with grid lines, collimator edges, patients
off-centre and tubes and lines; CheXpert's JPGs are strongly processed; the covid collection is scraped from
papers and websites. A model trained on one and tested on another meets a domain gap -- the localization
paper's setting (a detector trained on one source, evaluated on MIMIC-CXR and ChestX-ray8). A :class:`Site`
draws that gap: exposure and contrast curve, edge enhancement, noise, anti-scatter grid, collimation,
positioning and support-device prevalence. The view mix and finding prevalences live in the finding profile
(:data:`~.findings.PROFILES`); the file format (8-bit PNG/JPG vs DICOM with VOI) in the layout writers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import gaussian_filter

from monai_xattn.data.phantom.anatomy import Patient

__all__ = ["Site", "SITES"]


@dataclass(frozen=True)
class Site:
    """One acquisition site.

    Attributes:
        name: key in :data:`SITES`.
        description: where it stands in for.
        exposure: range of the film exposure multiplier (higher is darker).
        gamma: range of the detector response gamma.
        noise: multiplier of the difficulty's quantum noise (portable films are noisier).
        rotation: multiplier of the difficulty's largest rotation.
        centre_jitter: standard deviation of the thorax centre, fraction of the image (portable films are
            less well centred).
        contrast: slope of the site's sigmoid display curve (0: the detector response as is).
        edge_enhancement: gain of an unsharp mask (sigma 2 % of the image side), as PACS processing applies.
        grid: amplitude of anti-scatter grid lines (0: none); ``grid_period`` their period in pixels at 256 px.
        collimation: probability that collimator edges show as bright unexposed bands.
        device_rate: multiplier of the support-device prevalence.
    """

    name: str
    description: str
    exposure: tuple[float, float] = (0.8, 1.1)
    gamma: tuple[float, float] = (0.8, 1.25)
    noise: float = 1.0
    rotation: float = 1.0
    centre_jitter: float = 0.02
    contrast: float = 0.0
    edge_enhancement: float = 0.0
    grid: float = 0.0
    grid_period: float = 3.0
    collimation: float = 0.0
    device_rate: float = 1.0

    def adjust_patient(self, patient: Patient, rng: np.random.Generator) -> Patient:
        """The patient as this site films them: exposure, gamma and centring (``default``: unchanged)."""
        if self.name == "default":
            return patient
        return replace(
            patient,
            exposure=float(rng.uniform(*self.exposure)),
            gamma=float(rng.uniform(*self.gamma)),
            noise=patient.noise * self.noise,
            center=(float(0.5 + rng.normal(0, self.centre_jitter)), float(0.5 + rng.normal(0, self.centre_jitter))),
        )

    def process(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The site's processing of an exposed ``(rows, cols)`` image in [0, 1] (bright = dense)."""
        if self.name == "default":
            return image
        rows, cols = image.shape
        img = image.astype(np.float32)
        if self.grid > 0:  # lead strips of the anti-scatter grid: fine vertical lines, some aliasing drift
            period = self.grid_period * cols / 256 * rng.uniform(0.9, 1.1)
            phase = np.arange(cols, dtype=np.float32) * (2 * np.pi / period) + rng.uniform(0, 2 * np.pi)
            img = img + self.grid * rng.uniform(0.5, 1.0) * np.sin(phase)[None, :]
        if self.edge_enhancement > 0:
            blurred = gaussian_filter(img, sigma=0.02 * max(rows, cols))
            img = img + self.edge_enhancement * (img - blurred)
        if self.contrast > 0:
            centre = float(np.median(img)) + rng.normal(0, 0.03)
            curve = 1 / (1 + np.exp(-self.contrast * (img - centre)))
            lo, hi = 1 / (1 + np.exp(self.contrast * centre)), 1 / (1 + np.exp(-self.contrast * (1 - centre)))
            img = (curve - lo) / (hi - lo)
        if self.collimation > 0 and rng.random() < self.collimation:
            # collimator blades leave unexposed (bright) bands on some sides
            widths = (
                rng.uniform(0.0, 0.07, size=4) * (rng.random(4) < 0.6) * np.array([rows, rows, cols, cols])
            ).astype(int)
            top, bottom, left, right = (int(w) for w in widths)
            level = rng.uniform(0.85, 0.97)
            if top:
                img[:top] = level
            if bottom:
                img[rows - bottom :] = level
            if left:
                img[:, :left] = level
            if right:
                img[:, cols - right :] = level
        return np.clip(img, 0, 1).astype(np.float32)


SITES: dict[str, Site] = {
    # what synthesize_study draws when no site is named: the phantom's round-1 acquisition, unprocessed
    "default": Site("default", "unprocessed detector response (round-1 phantom)"),
    "nih": Site(
        "nih", "NIH Clinical Center PACS (ChestX-ray14; RSNA and SIIM images come from it): processed 8-bit, "
        "mild edge enhancement, well centred, few devices",
        exposure=(0.85, 1.0), gamma=(0.9, 1.1), noise=0.9, rotation=0.8, centre_jitter=0.015, contrast=4.0,
        edge_enhancement=0.6, device_rate=0.8,
    ),
    "mimic": Site(
        "mimic", "Beth Israel Deaconess ICU-heavy archive (MIMIC-CXR, MS-CXR): raw-ish detector DICOMs, portable "
        "films with grid lines and collimator edges, patients off-centre, many tubes and lines",
        exposure=(0.7, 1.25), gamma=(0.7, 1.0), noise=1.4, rotation=1.5, centre_jitter=0.035, grid=0.025,
        grid_period=3.0, collimation=0.5, device_rate=2.0,
    ),
    "chexpert": Site(
        "chexpert", "Stanford (CheXpert): strongly processed JPGs, high contrast, strong edge enhancement",
        exposure=(0.8, 1.1), gamma=(0.85, 1.2), noise=1.1, rotation=1.2, centre_jitter=0.025, contrast=7.0,
        edge_enhancement=1.2, collimation=0.2, device_rate=1.5,
    ),
    "web": Site(
        "web", "covid-chestxray-dataset: figures from papers and websites, any processing",
        exposure=(0.6, 1.3), gamma=(0.6, 1.4), noise=1.2, rotation=1.5, centre_jitter=0.04, contrast=5.0,
        edge_enhancement=0.8, collimation=0.3,
    ),
}  # fmt: skip
