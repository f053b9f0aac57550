"""MIMIC-style radiology reports written from a study's structured findings, with attribute ground truth.

Every sentence is generated with one *status* for all the attribute words it holds: ``positive`` (stated),
``uncertain`` (hedged: "possible", "cannot exclude") or ``negated`` ("no", "... is clear"). A sentence never mixes
statuses, so the attribute ground truth is exact: an attribute is in ``attributes`` iff one of its surface forms
(from the vocabulary YAML) occurs in a positive sentence of FINDINGS/IMPRESSION; otherwise it is
``uncertain_attributes`` if it occurs in a hedged one, otherwise ``negated_attributes`` if in a negated one.
Surface forms are found with a whole-word match on the generated text, so synonyms, abbreviations and typos
the generator injects are accounted for by construction (typos are only ever injected into words that are no
attribute surface form; lobe abbreviations such as "RLL" are not surface forms and so carry no attribute).

CheXpert-style labels (1 / 0 / -1 / ``None`` = not mentioned) follow the same statements.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field

import numpy as np

from monai_xattn.data.chexpert import CHEXPERT_LABELS  # the dataset's label columns, one definition
from monai_xattn.data.phantom.findings import DIFFICULTY_SETTINGS, Finding
from monai_xattn.text.attributes import AttributeVocabulary, load_vocabulary

__all__ = ["CHEXPERT_LABELS", "Sentence", "Report", "write_report", "phrase_for_box", "text_attributes", "location"]

#: the 14 CheXpert / MIMIC-CXR labels, in CheXpert's ``train.csv`` order

_STATUS_RANK = {"positive": 3, "uncertain": 2, "negated": 1}
_LABEL_VALUE = {"positive": 1, "uncertain": -1, "negated": 0}

# typos only for words that are no attribute surface form (checked again at injection)
_TYPOS = {
    "pneumonia": "pnuemonia", "effusion": "effusoin", "silhouette": "silhouete", "pneumothorax": "pnemothorax",
    "cardiomediastinal": "cardiomedistinal", "pulmonary": "pulmonry", "there": "ther", "normal": "normla",
    "atelectasis": "atelectsis", "identified": "idenitfied", "evidence": "evidense",
}  # fmt: skip


@dataclass(frozen=True)
class Sentence:
    """One generated sentence: its ``section`` (``findings``/``impression``), the status of its attributes, and
    the finding kinds it describes (``("pneumonia",)``; a negated sentence names the kinds it rules out; ``()``
    for view, technique and normal boilerplate)."""

    text: str
    section: str
    status: str = "positive"
    findings: tuple[str, ...] = ()


@dataclass
class Report:
    """A generated report.

    Attributes:
        header: ``{"EXAMINATION": ..., "INDICATION": ..., "TECHNIQUE": ..., "COMPARISON": ...}``.
        sentences: FINDINGS and IMPRESSION sentences in order.
        labels: CheXpert label -> 1 / 0 / -1 / ``None`` (not mentioned).
        numbered_impression: write the impression as a numbered list.
    """

    header: dict[str, str]
    sentences: list[Sentence]
    labels: dict[str, int | None]
    numbered_impression: bool = False
    _forms: re.Pattern | None = field(default=None, repr=False)
    _form_names: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)

    def sentence_records(self) -> list[dict]:
        """The sentences as sidecar records: ``{"text", "section", "status", "findings"}``."""
        return [
            {"text": s.text, "section": s.section, "status": s.status, "findings": list(s.findings)}
            for s in self.sentences
        ]

    def section_text(self, section: str) -> str:
        """Text of ``findings`` or ``impression``, sentences joined."""
        parts = [s.text for s in self.sentences if s.section == section]
        if section == "impression" and self.numbered_impression and len(parts) > 1:
            return " ".join(f"{k}. {p}" for k, p in enumerate(parts, start=1))
        return " ".join(parts)

    @property
    def impression(self) -> str:
        return self.section_text("impression")

    def text(self) -> str:
        """The report as MIMIC-CXR writes it: a FINAL REPORT banner, ``NAME:`` headers, wrapped lines with a
        leading space."""

        def wrap(body: str) -> str:
            return "\n".join(textwrap.wrap(body, 78, initial_indent=" ", subsequent_indent=" ", break_on_hyphens=False))

        lines = ["                                 FINAL REPORT"]
        for name, value in self.header.items():
            lines += [f" {name}:  {value}", " "]
        lines += [" FINDINGS:", " ", wrap(self.section_text("findings")), " ", " IMPRESSION:", " "]
        lines += [wrap(self.impression), ""]
        return "\n".join(lines)

    def attributes(
        self, sections: tuple[str, ...] = ("findings", "impression"), kinds: tuple[str, ...] | None = None
    ) -> dict[str, list[str]]:
        """``{"attributes", "uncertain_attributes", "negated_attributes"}``: sorted, disjoint attribute names of
        the given sections (positive beats uncertain beats negated).

        Args:
            sections: report sections to read.
            kinds: read only the sentences that describe one of these finding kinds (``("pneumonia",)``: the
                pneumonia's own location and look, not an effusion's side); ``None`` reads every sentence.
        """
        best: dict[str, str] = {}
        for s in self.sentences:
            if s.section not in sections or (kinds is not None and not set(kinds) & set(s.findings)):
                continue
            for m in self._forms.finditer(s.text):
                for name in self._form_names[" ".join(m.group().lower().split())]:
                    if _STATUS_RANK[s.status] > _STATUS_RANK.get(best.get(name, ""), 0):
                        best[name] = s.status
        return {
            "attributes": sorted(n for n, st in best.items() if st == "positive"),
            "uncertain_attributes": sorted(n for n, st in best.items() if st == "uncertain"),
            "negated_attributes": sorted(n for n, st in best.items() if st == "negated"),
        }


def _surface_pattern(vocabulary: AttributeVocabulary) -> tuple[re.Pattern, dict[str, tuple[str, ...]]]:
    forms = {" ".join(f.split()): names for f, names in vocabulary.surface_forms().items()}
    alternation = "|".join(r"\s+".join(re.escape(w) for w in f.split()) for f in sorted(forms, key=lambda f: -len(f)))
    return re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE), forms


_VOCAB_CACHE: dict[int, tuple[AttributeVocabulary, re.Pattern, dict]] = {}


def _vocab_pattern(vocabulary: AttributeVocabulary | None):
    key = id(vocabulary)
    if key not in _VOCAB_CACHE or _VOCAB_CACHE[key][0] is not vocabulary:
        vocab = load_vocabulary() if vocabulary is None else vocabulary
        _VOCAB_CACHE[key] = (vocabulary, *_surface_pattern(vocab))
    return _VOCAB_CACHE[key][1], _VOCAB_CACHE[key][2]


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _side_word(rng: np.random.Generator, side: str, p_abbrev: float = 0.05) -> str:
    if rng.random() < p_abbrev:
        return "rt" if side == "right" else "lt"
    return side


def location(rng: np.random.Generator, f: Finding) -> tuple[str, str]:
    """``(prepositional, adjectival)`` location phrases of a lung finding: ("in the right lower lobe",
    "right lower lobe"), ("at the right base", "right basilar"), ("in the retrocardiac region", "retrocardiac") ..."""
    side = _side_word(rng, f.side)
    zone, lobe = f.zone, f.lobe
    if f.retrocardiac and rng.random() < 0.7:
        return _pick(
            rng,
            [("in the retrocardiac region", "retrocardiac"), ("in the left retrocardiac region", "left retrocardiac")],
        )
    if lobe and rng.random() < 0.08:
        return f"in the {lobe}", lobe  # abbreviation (RLL, LUL, ...): no attribute surface form
    if lobe == "lingula" and rng.random() < 0.6:
        return _pick(rng, [("in the lingula", "lingular"), ("in the lingular segment", "lingular")])
    zone_word = {"upper": "upper", "middle": _pick(rng, ["middle", "mid"]), "lower": "lower"}[zone]
    options = [(f"in the {side} {zone_word} lung", f"{side} {zone_word} lung")]
    if lobe != "lingula":
        lobe_zone = "middle" if zone == "middle" else zone
        options.append((f"in the {side} {lobe_zone} lobe", f"{side} {lobe_zone} lobe"))
    if zone == "lower":
        options += [(f"at the {side} base", f"{side} basilar"), (f"at the {side} lung base", f"{side} base")]
    if zone == "upper":
        options += [(f"at the {side} apex", f"{side} apical")]
    if zone == "middle":
        options += [(f"in the {side} mid lung zone", f"{side} mid lung")]
    return _pick(rng, options)


_OPACITY_NOUNS = {
    "patchy": ["patchy opacity", "patchy opacities", "patchy airspace opacity", "patchy infiltrate", "patchy consolidation"],
    "consolidation": ["consolidation", "focal consolidation", "airspace consolidation", "consolidative opacity", "dense airspace opacity"],
    "ground-glass": ["ground-glass opacity", "ground glass opacities", "hazy opacity", "hazy airspace opacities", "GGO"],
    "interstitial": ["interstitial opacities", "reticular opacities", "interstitial infiltrate", "reticulonodular opacities"],
}  # fmt: skip


def _pneumonia_sentences(
    rng, foci: list[Finding], hedge: bool, follow_up: bool, name_opacity: bool = False
) -> tuple[list[Sentence], str]:
    """FINDINGS + IMPRESSION sentences of one pneumonia group; returns the label status too.

    ``name_opacity`` makes a positive impression name the opacity ("consolidation"), as the labels do."""
    f0 = foci[0]
    noun = _pick(rng, _OPACITY_NOUNS[f0.opacity])
    subtle = _pick(rng, ["subtle ", "faint ", "mild "]) if f0.severity == "mild" and rng.random() < 0.5 else ""
    out = []
    if f0.distribution == "bilateral":
        if all(f.zone == "lower" for f in foci):
            where = _pick(rng, ["at both lung bases", "in the bilateral lower lobes", "bibasilar"])
            text = f"{_cap(subtle)}{noun} {where}" if where != "bibasilar" else f"{_cap(subtle + 'bibasilar ')}{noun}"
        else:
            text = f"{_cap(subtle)}bilateral {noun}"
            locs = [location(rng, f)[0] for f in foci]
            text = _cap(text) + " " + ", ".join(locs[:-1]) + f" and {locs[-1]}"
        imp_loc = "bilateral"
    elif f0.distribution == "multifocal":
        locs = [location(rng, f)[0] for f in foci]
        text = f"Multifocal {noun} " + ", ".join(locs[:-1]) + f" and {locs[-1]}"
        imp_loc = "multifocal"
    else:
        prep, adj = location(rng, f0)
        forms = [f"{_cap(subtle)}{noun} {prep}", f"{_cap(adj)} {subtle}{noun}"]
        text = _pick(rng, forms if hedge else [*forms, f"There is {subtle}{noun} {prep}"])
        if follow_up and rng.random() < 0.5:
            text += _pick(rng, [", new since the prior study", ", increased compared to prior"])
        imp_loc = adj
    if hedge:
        out.append(
            Sentence(
                _pick(rng, ["Possible ", "Cannot exclude "]) + text[0].lower() + text[1:] + ".", "findings", "uncertain"
            )
        )
        out.append(
            Sentence(
                _pick(
                    rng,
                    [
                        f"Possible {imp_loc} pneumonia.",
                        f"Cannot exclude early {imp_loc} pneumonia.",
                        f"Findings may represent {imp_loc} pneumonia in the appropriate clinical setting.",
                    ],
                ),
                "impression",
                "uncertain",
            )
        )
        return out, "uncertain"
    out.append(Sentence(text + ".", "findings", "positive"))
    if rng.random() < 0.5:
        out.append(
            Sentence(
                _pick(
                    rng,
                    [
                        "Findings are compatible with pneumonia.",
                        "In the appropriate clinical setting this represents pneumonia.",
                        "Findings are in keeping with infection.",
                    ],
                ),
                "findings",
                "positive",
            )
        )
    if name_opacity:
        out.append(Sentence(f"{_cap(imp_loc)} {noun} compatible with pneumonia.", "impression", "positive"))
        return out, "positive"
    out.append(
        Sentence(
            _pick(
                rng,
                [
                    f"{_cap(imp_loc)} pneumonia.",
                    f"{_cap(imp_loc)} {noun} compatible with pneumonia.",
                    f"Pneumonia in the {imp_loc} region."
                    if f0.distribution == "single" and "lobe" not in imp_loc
                    else f"{_cap(imp_loc)} pneumonia.",
                ],
            ),
            "impression",
            "positive",
        )
    )
    return out, "positive"


def _describe_group(
    rng: np.random.Generator,
    group: list[Finding],
    S: list[Sentence],
    imp: list[Sentence],
    label,
    cfg: dict,
    follow_up: bool,
    complete_impression: bool,
) -> None:
    """Append the FINDINGS (``S``) and IMPRESSION (``imp``) sentences of one finding group and record its
    CheXpert label statuses through ``label(name, status)``; see :func:`write_report`."""
    f0 = group[0]
    if f0.kind == "pneumonia":
        # only single foci are hedged: a long list could outrun a NegEx-style trigger window
        hedge = f0.distribution == "single" and rng.random() < cfg["p_hedge"]
        sents, st = _pneumonia_sentences(rng, group, hedge, follow_up, name_opacity=complete_impression)
        S += [s for s in sents if s.section == "findings"]
        imp += [s for s in sents if s.section == "impression"]
        label("Pneumonia", st)
        label("Lung Opacity", st)
        if f0.opacity == "consolidation":
            label("Consolidation", st)
    elif f0.kind == "effusion":
        size = f0.severity
        if len(group) == 2:
            text = _pick(
                rng,
                [f"Bilateral {size} pleural effusions.", f"{_cap(size)} bilateral pleural effusions are present."],
            )
        else:
            side = _side_word(rng, f0.side)
            text = _pick(
                rng,
                [
                    f"{_cap(size)} {side} pleural effusion.",
                    f"There is a {size} {side} pleural effusion.",
                    f"Blunting of the {side} costophrenic angle compatible with a {size} pleural effusion.",
                ],
            )
        if follow_up and rng.random() < 0.4:
            text = text[:-1] + ", unchanged from prior."
        S.append(Sentence(text, "findings", "positive"))
        if complete_impression or rng.random() < 0.6:
            imp.append(
                Sentence(
                    f"{_cap(size)} {'bilateral' if len(group) == 2 else f0.side} pleural effusion{'s' if len(group) == 2 else ''}.",
                    "impression",
                    "positive",
                )
            )
        label("Pleural Effusion", "positive")
    elif f0.kind == "cardiomegaly":
        sev = {"mild": "mildly", "moderate": "moderately", "severe": "severely"}[f0.severity]
        S.append(
            Sentence(
                _pick(
                    rng,
                    [
                        f"The heart is {sev} enlarged.",
                        f"{_cap(f0.severity)} cardiomegaly.",
                        f"Heart size is {sev} enlarged, unchanged from prior."
                        if follow_up
                        else f"{_cap(f0.severity)} enlargement of the cardiac silhouette.",
                    ],
                ),
                "findings",
                "positive",
            )
        )
        if complete_impression or rng.random() < 0.5:
            imp.append(Sentence(f"{_cap(f0.severity)} cardiomegaly.", "impression", "positive"))
        label("Cardiomegaly", "positive")
    elif f0.kind == "atelectasis":
        prep, adj = location(rng, f0)
        if f0.opacity:  # the pneumonia look-alike
            text = _pick(
                rng,
                [
                    f"Patchy opacity {prep} most consistent with atelectasis.",
                    f"{_cap(adj)} patchy opacity, most compatible with atelectasis.",
                ],
            )
            label("Lung Opacity", "positive")
        else:
            text = _pick(
                rng,
                [
                    f"Linear atelectasis {prep}.",
                    f"Plate-like atelectasis {prep}.",
                    f"{_cap(adj)} subsegmental atelectasis.",
                ],
            )
        S.append(Sentence(text, "findings", "positive"))
        if complete_impression:
            _, adj = location(rng, f0)
            imp.append(
                Sentence(
                    _pick(
                        rng,
                        [f"{_cap(adj)} atelectasis.", f"{_cap(adj)} opacity, likely atelectasis."]
                        if f0.opacity
                        else [f"{_cap(adj)} atelectasis.", f"{_cap(adj)} linear atelectasis."],
                    ),
                    "impression",
                    "positive",
                )
            )
        label("Atelectasis", "positive")
    elif f0.kind == "edema":
        sev = f0.severity
        options = [
            f"{_cap(sev)} pulmonary edema.",
            f"{_cap(sev)} interstitial pulmonary edema.",
            f"Perihilar haziness and vascular congestion compatible with {sev} pulmonary edema.",
        ]
        if len(group) == 2:  # "bilateral" only where both lungs show it
            options.append(f"Diffuse bilateral interstitial markings compatible with {sev} edema.")
        S.append(Sentence(_pick(rng, options), "findings", "positive"))
        imp.append(Sentence(f"{_cap(sev)} pulmonary edema.", "impression", "positive"))
        label("Edema", "positive")
        label("Lung Opacity", "positive")
    elif f0.kind == "pneumothorax":
        size = f0.severity
        sides = "bilateral" if len(group) == 2 else _side_word(rng, f0.side)
        text = _pick(
            rng,
            [
                f"{_cap(size)} {sides} apical pneumothorax.",
                f"There is a {size} {sides} pneumothorax.",
                f"{_cap(size)} {sides} pneumothorax with a visible pleural line.",
            ],
        )
        S.append(Sentence(text, "findings", "positive"))
        imp.append(Sentence(f"{_cap(size)} {sides} pneumothorax.", "impression", "positive"))
        label("Pneumothorax", "positive")
    elif f0.kind == "nodule":
        prep, _ = location(rng, f0)
        mm = int(round(f0.radii[0] * 2 * 150))
        S.append(
            Sentence(
                _pick(rng, [f"A {mm} mm nodule projects {prep}.", f"Nodular opacity {prep} measuring {mm} mm."]),
                "findings",
                "positive",
            )
        )
        imp.append(
            Sentence("Pulmonary nodule, recommend chest CT for further characterization.", "impression", "positive")
        )
        label("Lung Lesion", "positive")
    elif f0.kind == "device":
        for f in group:
            text = {
                "endotracheal tube": [
                    "Endotracheal tube terminates approximately 4 cm above the carina.",
                    "ETT in standard position.",
                ],
                "nasogastric tube": [
                    "Enteric tube courses below the diaphragm with the tip in the stomach.",
                    "NGT tip in the stomach.",
                ],
                "central venous catheter": [
                    "Right internal jugular central venous catheter tip in the mid SVC.",
                    "R IJ line terminates in the SVC.",
                ],
                "pacemaker": [
                    "Left chest wall pacemaker with leads in the right atrium and right ventricle.",
                    "Dual-chamber pacer device unchanged.",
                ],
                "ecg leads": ["EKG leads overlie the chest.", "Monitoring leads project over the chest."],
            }[f.device]
            S.append(Sentence(_pick(rng, text), "findings", "positive"))
        label("Support Devices", "positive")


def write_report(
    findings: list[Finding],
    rng: np.random.Generator,
    view: str = "PA",
    lateral: bool = True,
    difficulty: str = "medium",
    sex: str = "F",
    vocabulary: AttributeVocabulary | None = None,
    complete_impression: bool = False,
) -> Report:
    """Write a report for ``findings``.

    Args:
        findings: the study's visible findings.
        rng: the study's text generator.
        view: frontal projection (``PA`` / ``AP``).
        lateral: whether a lateral view was taken (examination name, technique).
        difficulty: hard reports hedge more and carry more typos (see ``DIFFICULTY_SETTINGS``).
        sex: for the indication line.
        vocabulary: attribute vocabulary whose surface forms define the ground truth (default: shipped one).
        complete_impression: restate every effusion, cardiomegaly and atelectasis in the IMPRESSION (pneumonia,
            edema, pneumothorax and nodules always are) and name a pneumonia's opacity there ("consolidation").
            CheXpert's labels were read from the impression by its labeler, so a CheXpert-style layout, whose
            report *is* the impression, needs every labelled finding there; MIMIC-style reports keep the selective
            impression (effusion 60 %, cardiomegaly 50 %, atelectasis in FINDINGS only). ``False`` draws exactly
            the random numbers it always did.
    """
    cfg = DIFFICULTY_SETTINGS[difficulty]
    pattern, form_names = _vocab_pattern(vocabulary)
    status: dict[str, str] = {}

    def label(name: str, st: str) -> None:
        if _STATUS_RANK[st] > _STATUS_RANK.get(status.get(name, ""), 0):
            status[name] = st

    kinds = {f.kind for f in findings}
    by_group: dict[int, list[Finding]] = {}
    for f in findings:
        by_group.setdefault(f.group, []).append(f)
    follow_up = rng.random() < 0.4
    S: list[Sentence] = []
    imp: list[Sentence] = []

    if view == "AP":
        S.append(
            Sentence(
                _pick(
                    rng,
                    [
                        "Portable AP upright view of the chest.",
                        "Single portable AP chest radiograph.",
                        "AP portable semi-upright view of the chest was obtained.",
                    ],
                ),
                "findings",
                "positive",
            )
        )
    elif lateral:
        S.append(
            Sentence(
                _pick(
                    rng,
                    [
                        "PA and lateral views of the chest were obtained.",
                        "Frontal and lateral views of the chest.",
                        "PA and lateral chest radiographs were obtained.",
                    ],
                ),
                "findings",
                "positive",
            )
        )

    def tag(start_s: int, start_imp: int, kinds: tuple[str, ...]) -> None:
        # the sentences appended since (start_s, start_imp) describe ``kinds``
        for sents, start in ((S, start_s), (imp, start_imp)):
            sents[start:] = [Sentence(x.text, x.section, x.status, kinds) for x in sents[start:]]

    for group in by_group.values():
        f0 = group[0]
        n_s, n_imp = len(S), len(imp)
        _describe_group(rng, group, S, imp, label, cfg, follow_up, complete_impression)
        tag(n_s, n_imp, (f0.kind,))

    # negatives and normal boilerplate
    lung_disease = kinds & {"pneumonia", "atelectasis", "edema", "nodule"}
    if "pneumonia" not in kinds:
        options = ["No focal consolidation.", "There is no focal consolidation."]
        options = options if lung_disease else [*options, "No focal airspace opacity."]
        S.append(Sentence(_pick(rng, options), "findings", "negated", ("pneumonia",)))
        label("Consolidation", "negated")
        if not lung_disease and rng.random() < 0.6:
            S.append(
                Sentence(
                    _pick(rng, ["The lungs are clear.", "Lungs are well expanded and clear."]), "findings", "negated"
                )
            )
    elif len({f.side for f in findings if f.kind == "pneumonia"}) == 1 and rng.random() < 0.35:
        other = "left" if next(f.side for f in findings if f.kind == "pneumonia") == "right" else "right"
        S.append(Sentence(f"The {other} lung is clear.", "findings", "negated"))
    negatives = []
    if "effusion" not in kinds:
        negatives.append("pleural effusion")
        label("Pleural Effusion", "negated")
    if "pneumothorax" not in kinds:
        negatives.append("pneumothorax")
        label("Pneumothorax", "negated")
    if negatives:
        ruled_out = tuple(k for k in ("effusion", "pneumothorax") if k not in kinds)
        S.append(Sentence(f"No {' or '.join(negatives)}.", "findings", "negated", ruled_out))
    if "edema" not in kinds and rng.random() < 0.5:
        S.append(Sentence("No pulmonary edema.", "findings", "negated", ("edema",)))
        label("Edema", "negated")
    if "cardiomegaly" not in kinds:
        S.append(
            Sentence(
                _pick(
                    rng,
                    [
                        "Heart size is normal.",
                        "The cardiomediastinal silhouette is within normal limits.",
                        "Cardiac and mediastinal contours are unremarkable.",
                    ],
                ),
                "findings",
                "positive",
                ("cardiomegaly",),
            )
        )
        label("Cardiomegaly", "negated")
    if rng.random() < 0.5:
        S.append(
            Sentence(
                _pick(rng, ["No acute osseous abnormality.", "Osseous structures are intact."]), "findings", "positive"
            )
        )
    if rng.random() < 0.15 and len(S) > 2:  # a redundant restatement, as dictated reports have
        S.append(S[int(rng.integers(1, len(S)))])
    if not imp:
        text = _pick(
            rng,
            ["No acute cardiopulmonary process.", "No evidence of pneumonia.", "No acute intrathoracic abnormality."],
        )
        imp.append(Sentence(text, "impression", "negated", ("pneumonia",) if "pneumonia" in text else ()))
        if "pneumonia" not in kinds:
            label("Pneumonia", "negated")
    elif "pneumonia" not in kinds and rng.random() < 0.5:
        imp.append(Sentence("No evidence of pneumonia.", "impression", "negated", ("pneumonia",)))
        label("Pneumonia", "negated")

    sentences = [Sentence(_typo(rng, s.text, pattern, cfg["p_typo"]), s.section, s.status, s.findings) for s in S + imp]
    abnormal = any(status.get(k) in ("positive", "uncertain") for k in CHEXPERT_LABELS[1:-1])
    if not abnormal:
        status["No Finding"] = "positive"
    labels = {k: (_LABEL_VALUE[status[k]] if k in status else None) for k in CHEXPERT_LABELS}
    header = {
        "EXAMINATION": "CHEST (PORTABLE AP)" if view == "AP" else ("CHEST (PA AND LAT)" if lateral else "CHEST (PA)"),
        "INDICATION": f"___ year old {'woman' if sex == 'F' else 'man'} with "
        + _pick(
            rng,
            [
                "cough and fever  // ? pneumonia",
                "shortness of breath",
                "chest pain",
                "hypoxia, eval for pna",
                "fever  // r/o PNA",
                "s/p line placement",
            ],
        ),
        "TECHNIQUE": "Portable AP chest radiograph." if view == "AP" else "Chest PA and lateral.",
        "COMPARISON": "___" if follow_up else "None.",
    }
    return Report(
        header=header,
        sentences=sentences,
        labels=labels,
        numbered_impression=bool(rng.random() < 0.3),
        _forms=pattern,
        _form_names=form_names,
    )


def text_attributes(texts: list[str], vocabulary: AttributeVocabulary | None = None) -> list[str]:
    """Sorted attribute names whose surface forms occur in ``texts`` (positive statements, e.g. MS-CXR phrases)."""
    pattern, form_names = _vocab_pattern(vocabulary)
    found = {n for t in texts for m in pattern.finditer(t) for n in form_names[" ".join(m.group().lower().split())]}
    return sorted(found)


def _typo(rng: np.random.Generator, text: str, pattern: re.Pattern, p: float) -> str:
    """Misspell one non-attribute word of ``text`` with probability ``p``."""
    if p <= 0 or rng.random() >= p:
        return text
    words = [w for w in _TYPOS if re.search(rf"\b{w}\b", text, re.IGNORECASE)]
    if not words:
        return text
    w = _pick(rng, words)
    new = re.sub(rf"\b{w}\b", _TYPOS[w], text, count=1, flags=re.IGNORECASE)
    # a typo must never create or destroy an attribute surface form
    same = sorted(m.group().lower() for m in pattern.finditer(new)) == sorted(
        m.group().lower() for m in pattern.finditer(text)
    )
    return new if same else text


def phrase_for_box(rng: np.random.Generator, group: list[Finding]) -> tuple[str, str]:
    """``(category_name, label_text)`` of one finding, MS-CXR style ("Pneumonia", "Right lower lobe consolidation").

    Args:
        rng: the study's generator.
        group: the finding's instances (one box each); the phrase covers all of them ("Bilateral pleural
            effusions" for a left and a right box), as an MS-CXR phrase with several boxes does.
    """
    f = group[0]
    sides = {g.side for g in group}
    where = "bilateral" if len(sides) > 1 else f.side
    if f.kind == "pneumonia":
        noun = _pick(rng, _OPACITY_NOUNS[f.opacity])
        if len(group) > 1:
            text = f"{_cap(where if len(sides) > 1 else 'multifocal')} {noun}"
        else:
            prep, adj = location(rng, f)
            text = _pick(rng, [f"{_cap(adj)} {noun}", f"{_cap(noun)} {prep}"])
        return ("Consolidation" if f.opacity == "consolidation" and rng.random() < 0.5 else "Pneumonia"), text
    if f.kind == "effusion":
        return "Pleural Effusion", f"{_cap(f.severity)} {where} pleural effusion{'s' if len(group) > 1 else ''}"
    if f.kind == "cardiomegaly":
        return "Cardiomegaly", _pick(
            rng, ["Cardiomegaly", "Enlarged cardiac silhouette", f"{_cap(f.severity)} cardiomegaly"]
        )
    if f.kind == "atelectasis":
        prep, _ = location(rng, f)
        return "Atelectasis", f"Atelectasis {prep}"
    if f.kind == "edema":
        return "Edema", _pick(rng, ["Pulmonary edema", f"{_cap(f.severity)} pulmonary edema"])
    if f.kind == "pneumothorax":
        return "Pneumothorax", f"{_cap(f.severity)} {where} pneumothorax"
    if f.kind == "nodule":
        prep, _ = location(rng, f)
        return "Lung Opacity", f"Nodular opacity {prep}"
    raise ValueError(f"no MS-CXR category for finding kind {f.kind!r}")
