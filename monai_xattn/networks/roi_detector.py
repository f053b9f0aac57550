"""2D RetinaNet (``monai.apps.detection``) that also returns per-ROI features for the cross-attention head.

:class:`RoiDetector` is a :class:`~monai.apps.detection.networks.retinanet_detector.RetinaNetDetector`: its
``forward`` is MONAI's, unchanged (a loss dict in training, a list of detections in evaluation). Its
:meth:`RoiDetector.forward_rois` runs the network once and returns, besides losses and detections, the top-N
ROIs of every image and its lowest-ranking ROIs (the negatives ``I_n`` of Bhalodia et al., MICCAI 2021), each
with

- ``r``: the ROI feature, ``torchvision.ops.MultiScaleRoIAlign`` on the FPN maps averaged over its bins (computed
  as one weighted sum per ROI by :class:`~monai_xattn.networks.roi_pooling.RoiAlignMean`), ``(B, N, C)``;
- ``s``: the pneumonia classification score (sigmoid of the class logit), ``(B, N)``;
- ``g``: the geometry, ``(B, N, 9)``, fields :data:`ROI_GEOMETRY_FIELDS`, normalised by the image size;
- ``boxes``: ``(B, N, 4)`` StandardMode boxes and ``mask``: ``(B, N)``, ``False`` where fewer than N survive.

Images follow MONAI's convention: ``(B, C, W, H)``, spatial axis 0 is the image x, boxes are ``[x0, y0, x1, y1]``
in that frame.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from contextlib import nullcontext

import torch
from monai.apps.detection.networks.retinanet_detector import RetinaNetDetector
from monai.apps.detection.networks.retinanet_network import RetinaNet, resnet_fpn_feature_extractor
from monai.apps.detection.utils.anchor_utils import AnchorGenerator, AnchorGeneratorWithAnchorShape
from monai.apps.detection.utils.detector_utils import check_training_targets, preprocess_images
from monai.losses import BoxGIoULoss, FocalLoss
from torch import Tensor, nn
from torch.nn.modules.module import _IncompatibleKeys
from torchvision.ops import batched_nms

from monai_xattn.networks.resnet_weights import load_encoder_weights
from monai_xattn.networks.roi_pooling import RoiAlignMean
from monai_xattn.networks.trunk import resnet_trunk
from monai_xattn.utils.checkpoints import read_state_dict

__all__ = [
    "ROI_GEOMETRY_FIELDS",
    "RoiDetector",
    "create_roi_detector",
    "load_detector_weights",
    "load_backbone_weights",
    "roi_geometry",
]

logger = logging.getLogger(__name__)

ROI_GEOMETRY_FIELDS: tuple[str, ...] = ("x0", "y0", "x1", "y1", "width", "height", "area", "cx", "cy")
"""Meaning of the last axis of ``g``: corners, width, height, area and centre, each divided by the image size
(W for x quantities, H for y quantities, W * H for the area), so every field lies in [0, 1]."""


def _unwrap(network: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` / ``DataParallel`` wrapper (or the module itself)."""
    return getattr(network, "module", network)


def roi_geometry(boxes: Tensor, image_sizes: Tensor) -> Tensor:
    """Normalised geometry of boxes, fields :data:`ROI_GEOMETRY_FIELDS`.

    Args:
        boxes: ``(B, N, 4)`` StandardMode boxes ``[x0, y0, x1, y1]``.
        image_sizes: ``(B, 2)`` spatial size ``(W, H)`` of each (unpadded) image.

    Returns:
        ``(B, N, 9)`` tensor.
    """
    size = image_sizes.to(boxes).unsqueeze(1)  # (B, 1, 2)
    lo, hi = boxes[..., :2] / size, boxes[..., 2:] / size
    wh = hi - lo
    area = wh.prod(-1, keepdim=True)
    return torch.cat([lo, hi, wh, area, (lo + hi) / 2], dim=-1)


class RoiDetector(RetinaNetDetector):
    """MONAI's RetinaNet detector plus a per-ROI feature path (see the module docstring).

    Args:
        network: a :class:`~monai.apps.detection.networks.retinanet_network.RetinaNet` (or a DDP wrapper of one)
            whose ``feature_extractor`` returns an ordered dict of FPN maps.
        anchor_generator: anchor generator, as for ``RetinaNetDetector``.
        n_rois: number N of top-ranked ROIs returned per image.
        n_negatives: number of lowest-ranking ROIs returned per image (default: ``n_rois``).
        roi_output_size: RoIAlign output size before average pooling.
        roi_sampling_ratio: RoIAlign sampling ratio (``<= 0``: torchvision's adaptive count, through torchvision).
        roi_feature_maps: names of the FPN maps RoIAlign pools from (default: every map but ``"pool"``).
        roi_candidates: anchors ranked per image before NMS, for the top ROIs and for the negatives alike.
        roi_nms_thresh: IoU threshold of the NMS that de-duplicates ROIs (default: the box selector's).
        kwargs: passed to ``RetinaNetDetector`` (``spatial_dims``, ``num_classes``, ``size_divisible``, ...).

    Example::

        detector = create_roi_detector(depth=18, n_rois=8)
        detector.eval()
        out = detector.forward_rois(torch.rand(2, 1, 128, 128))
        out["rois"]["r"].shape  # (2, 8, 256)
    """

    def __init__(
        self,
        network: nn.Module,
        anchor_generator: AnchorGenerator,
        n_rois: int = 32,
        n_negatives: int | None = None,
        roi_output_size: int = 7,
        roi_sampling_ratio: int = 2,
        roi_feature_maps: Sequence[str] | None = None,
        roi_candidates: int = 1000,
        roi_nms_thresh: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(network=network, anchor_generator=anchor_generator, **kwargs)
        if self.spatial_dims != 2:
            raise ValueError(f"RoiDetector is 2D only, got spatial_dims={self.spatial_dims}.")
        if n_rois < 1:
            raise ValueError(f"n_rois must be >= 1, got {n_rois}.")
        self.n_rois = int(n_rois)
        self.n_negatives = self.n_rois if n_negatives is None else int(n_negatives)
        self.roi_candidates = int(roi_candidates)
        self.roi_nms_thresh = roi_nms_thresh
        if roi_feature_maps is None:
            roi_feature_maps = self._default_feature_maps()
        self.roi_feature_maps = list(roi_feature_maps)
        self.roi_pooler = RoiAlignMean(self.roi_feature_maps, roi_output_size, roi_sampling_ratio)
        self.frozen = False

    def _default_feature_maps(self) -> list[str]:
        body = getattr(_unwrap(self.network).feature_extractor, "body", None)
        return_layers = getattr(body, "return_layers", None)
        if not return_layers:
            raise ValueError("roi_feature_maps is required when the feature extractor is not MONAI's ResNet-FPN.")
        return list(return_layers.values())

    def freeze(self, frozen: bool = True) -> RoiDetector:
        """Freeze (or unfreeze) the detector: no gradients, batch-norm statistics fixed (network kept in eval).

        The ROI path of a frozen detector runs under ``torch.no_grad``; ``train()`` no longer switches the
        network to training mode, so a head trained on top sees the same features in train and eval.
        """
        self.frozen = frozen
        for p in self.network.parameters():
            p.requires_grad_(not frozen)
        return self.train(self.training)

    def train(self, mode: bool = True) -> RoiDetector:
        super().train(mode)
        if self.frozen:
            self.network.eval()
        return self

    def forward_rois(self, input_images: list[Tensor] | Tensor, targets: list[dict[str, Tensor]] | None = None) -> dict:
        """One network pass giving ROI features, detections (eval) and detection losses (training, with targets).

        ROIs are ranked by their class score (the maximum over classes): the top ROIs are the best of the
        ``roi_candidates`` highest-scoring anchors after box decoding, clipping and NMS; the negatives are,
        likewise, the NMS-distinct boxes among the ``roi_candidates`` lowest-scoring anchors (the detector's
        most confident background).

        Args:
            input_images: ``(B, C, W, H)`` tensor or list of ``(C, W, H)`` tensors, normalised as in training.
            targets: per-image dicts with the target box / label keys; losses are computed only when the
                detector is in training mode (and not frozen) and targets are given.

        Returns:
            dict with

            - ``"rois"``: dict ``boxes (B, N, 4)``, ``r (B, N, C)``, ``s (B, N)``, ``g (B, N, 9)``,
              ``mask (B, N)`` for the top-N ROIs, best first;
            - ``"negatives"``: the same for the ``n_negatives`` lowest-ranking ROIs, lowest first;
            - ``"detections"``: in eval mode, MONAI's own per-image detections (``RetinaNetDetector`` output);
            - ``"losses"``: ``{cls_key, box_reg_key}`` loss dict, when computed.

            ``boxes`` and ``g`` carry no gradient; ``r`` and ``s`` do unless the detector is frozen.
        """
        compute_loss = self.training and not self.frozen and targets is not None
        if compute_loss:
            targets = check_training_targets(
                input_images, targets, self.spatial_dims, self.target_label_key, self.target_box_key
            )
            self._check_detector_training_components()
        images, image_sizes = preprocess_images(input_images, self.spatial_dims, self.size_divisible)

        features: dict[str, Tensor] = {}
        # RetinaNet returns only head outputs; the hook keeps the FPN maps of this same pass
        hook = _unwrap(self.network).feature_extractor.register_forward_hook(
            lambda _module, _inputs, output: features.update(output)
        )
        try:
            with torch.no_grad() if self.frozen else nullcontext():
                head_outputs = self.network(images)
        finally:
            hook.remove()
        if isinstance(head_outputs, (tuple, list)):
            half = len(head_outputs) // 2
            head_outputs = {self.cls_key: list(head_outputs[:half]), self.box_reg_key: list(head_outputs[half:])}
        self.generate_anchors(images, head_outputs)
        num_anchor_locs_per_level = [x.shape[2:].numel() for x in head_outputs[self.cls_key]]
        head = {key: self._reshape_maps(head_outputs[key]) for key in (self.cls_key, self.box_reg_key)}

        out: dict = {}
        if compute_loss:
            out["losses"] = self.compute_loss(head, targets, self.anchors, num_anchor_locs_per_level)
        if not self.training:
            out["detections"] = self.postprocess_detections(head, self.anchors, image_sizes, num_anchor_locs_per_level)

        scores = torch.sigmoid(head[self.cls_key].float()).amax(dim=-1)  # (B, A)
        sizes = torch.as_tensor(image_sizes, device=images.device)
        top = self._select(head, scores, sizes, self.n_rois, largest=True)
        neg = self._select(head, scores, sizes, self.n_negatives, largest=False)

        boxes = torch.cat([top[0], neg[0]], dim=1)  # (B, N + N_neg, 4), padded rows pooled then masked
        feats = {k: features[k] for k in self.roi_feature_maps}
        r = self.roi_pooler(feats, boxes, images.shape[-2:])  # (B, N + N_neg, C)
        for key, (b, sc, mask), part in (("rois", top, r[:, : self.n_rois]), ("negatives", neg, r[:, self.n_rois :])):
            out[key] = {
                "boxes": b,
                "r": part * mask.unsqueeze(-1),
                "s": sc,
                "g": roi_geometry(b, sizes) * mask.unsqueeze(-1),
                "mask": mask,
            }
        return out

    def _select(
        self, head: dict[str, Tensor], scores: Tensor, sizes: Tensor, n: int, largest: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Up to ``n`` NMS-distinct boxes per image among its ``roi_candidates`` highest (lowest) scored anchors.

        Args:
            head: reshaped head outputs; scores: ``(B, A)`` class scores; sizes: ``(B, 2)`` image sizes.

        Returns:
            boxes ``(B, n, 4)`` (no gradient), scores ``(B, n)`` and mask ``(B, n)``, in ranking order, zero-padded.
        """
        batch = scores.shape[0]
        k = min(self.roi_candidates, scores.shape[1])
        cand_scores, idx = scores.topk(k, dim=1, largest=largest)  # (B, k), sorted
        with torch.no_grad():  # ROI boxes are proposals, not trained through this path
            reg = head[self.box_reg_key]
            reg = reg.gather(1, idx.unsqueeze(-1).expand(-1, -1, reg.shape[-1]))
            anc = torch.stack(self.anchors).gather(1, idx.unsqueeze(-1).expand(-1, -1, 4))
            boxes = self.box_coder.decode_single(reg.reshape(-1, 4).float(), anc.reshape(-1, 4)).reshape(batch, k, 4)
            upper = sizes.to(boxes).repeat(1, 2).unsqueeze(1)  # (B, 1, 4): [W, H, W, H]
            boxes = torch.minimum(boxes.clamp(min=0), upper)
            valid = (boxes[..., 2:] > boxes[..., :2]).all(-1)  # clipping may leave empty boxes
            image_idx = torch.arange(batch, device=scores.device).unsqueeze(1).expand(-1, k)
            flat = valid.nonzero(as_tuple=True)
            rank_scores = cand_scores.detach()[flat]
            # one batched NMS call for all images (image index as the category); torchvision's C++ NMS
            # uses the same IoU as MONAI's (no +1 on widths) and returns the kept boxes by decreasing score
            keep = batched_nms(boxes[flat], rank_scores if largest else -rank_scores, image_idx[flat], self._roi_nms())
            img = image_idx[flat][keep]
            order = torch.argsort(img, stable=True)  # group by image, keeping the ranking inside each group
            keep, img = keep[order], img[order]
            first = torch.searchsorted(img, torch.arange(batch, device=img.device))
            pos = torch.arange(len(img), device=img.device) - first[img]
            take = pos < n
            keep, img, pos = keep[take], img[take], pos[take]
            out_boxes = boxes.new_zeros(batch, n, 4)
            out_boxes[img, pos] = boxes[flat][keep]
            mask = torch.zeros(batch, n, dtype=torch.bool, device=scores.device)
            mask[img, pos] = True
        out_scores = cand_scores.new_zeros(batch, n)
        out_scores = out_scores.index_put((img, pos), cand_scores[flat][keep])  # differentiable
        return out_boxes, out_scores, mask

    def _roi_nms(self) -> float:
        return self.box_selector.nms_thresh if self.roi_nms_thresh is None else self.roi_nms_thresh


def create_roi_detector(
    depth: int = 50,
    in_channels: int = 1,
    num_classes: int = 1,
    returned_layers: Sequence[int] = (1, 2, 3),
    base_anchor_shapes: Sequence[Sequence[int]] = ((32, 32), (48, 24), (24, 48)),
    n_rois: int = 32,
    n_negatives: int | None = None,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.5,
    topk_candidates_per_level: int = 1000,
    detections_per_img: int = 100,
    roi_candidates: int = 1000,
    atss_num_candidates: int = 4,
    hns_batch_size_per_image: int = 64,
    hns_positive_fraction: float = 0.3,
    box_loss: str = "giou",
    backbone_weights: str | os.PathLike | None = None,
    backbone_transpose: bool | None = None,
    **roi_kwargs,
) -> RoiDetector:
    """Build a trainable 2D :class:`RoiDetector` with MONAI's detection components.

    ResNet-``depth`` (MONAI, stride-2 7x7 stem) -> FPN on ``returned_layers`` -> RetinaNet heads; ATSS matcher,
    hard-negative sampler, focal loss (gamma 2), GIoU (``"giou"``) or smooth-L1 (``"smooth_l1"``) box loss,
    as in MONAI's detection tutorial.

    Args:
        depth: ResNet depth (50 in the paper; 18 for CPU demos).
        in_channels: image channels.
        num_classes: detection classes (1: pneumonia).
        returned_layers: ResNet stages feeding the FPN; the FPN adds a ``"pool"`` level on top.
        base_anchor_shapes: ``(W, H)`` anchor shapes at the finest level, doubled at every further level.
        n_rois, n_negatives, roi_candidates, roi_kwargs: see :class:`RoiDetector`.
        score_thresh, nms_thresh, topk_candidates_per_level, detections_per_img: the box selector.
        atss_num_candidates: ATSS candidates per level.
        hns_batch_size_per_image, hns_positive_fraction: hard-negative sampler.
        box_loss: ``"giou"`` or ``"smooth_l1"``.
        backbone_weights: optional file for :func:`load_backbone_weights` (ImageNet or GLoRIA ResNet).
        backbone_transpose: ``transpose_kernels`` of :func:`load_backbone_weights` (``None``: from the file).
    """
    # torchvision's bias-free shortcuts; the FPN body drops the fc head, which is still built (MONAI's default 400
    # classes) because building it draws from the random generator: seeded detectors keep their initialisation
    backbone = resnet_trunk(depth, in_channels, bias_downsample=False, num_classes=400)
    returned_layers = list(returned_layers)
    extractor = resnet_fpn_feature_extractor(backbone, 2, returned_layers=returned_layers)
    size_divisible = 2 * 2 * 2 ** max(returned_layers)  # stem stride, max-pool, then one halving per stage
    anchor_generator = AnchorGeneratorWithAnchorShape(
        feature_map_scales=[2**i for i in range(len(returned_layers) + 1)],
        base_anchor_shapes=[list(s) for s in base_anchor_shapes],
    )
    network = RetinaNet(
        spatial_dims=2,
        num_classes=num_classes,
        num_anchors=anchor_generator.num_anchors_per_location()[0],
        feature_extractor=extractor,
        size_divisible=size_divisible,
    )
    detector = RoiDetector(
        network,
        anchor_generator,
        n_rois=n_rois,
        n_negatives=n_negatives,
        roi_candidates=roi_candidates,
        **roi_kwargs,
    )
    detector.set_atss_matcher(num_candidates=atss_num_candidates, center_in_gt=False)
    detector.set_hard_negative_sampler(
        batch_size_per_image=hns_batch_size_per_image, positive_fraction=hns_positive_fraction, pool_size=20, min_neg=16
    )
    detector.set_target_keys(box_key="boxes", label_key="labels")
    detector.set_cls_loss(FocalLoss(gamma=2.0, reduction="mean"))
    if box_loss == "giou":
        detector.set_box_regression_loss(BoxGIoULoss(reduction="mean"), encode_gt=False, decode_pred=True)
    elif box_loss == "smooth_l1":
        detector.set_box_regression_loss(
            nn.SmoothL1Loss(beta=1.0 / 9, reduction="mean"), encode_gt=True, decode_pred=False
        )
    else:
        raise ValueError(f"box_loss must be 'giou' or 'smooth_l1', got {box_loss!r}.")
    detector.set_box_selector_parameters(
        score_thresh=score_thresh,
        topk_candidates_per_level=topk_candidates_per_level,
        nms_thresh=nms_thresh,
        detections_per_img=detections_per_img,
    )
    if backbone_weights is not None:
        load_backbone_weights(detector, backbone_weights, transpose_kernels=backbone_transpose)
    return detector


def load_detector_weights(
    detector: RetinaNetDetector, source: str | os.PathLike | Mapping[str, Tensor], strict: bool = True
) -> _IncompatibleKeys:
    """Load a detector checkpoint (``detector.network`` state dict) with ``weights_only=True``.

    Accepts what :func:`monai_xattn.utils.read_state_dict` reads: a plain state dict or one stored under
    ``"network"``, ``"model"`` or ``"state_dict"`` (MONAI bundles, :class:`monai_xattn.engines.AtomicCheckpointSaver`,
    Lightning), with or without DDP's ``module.`` prefix.

    Returns:
        ``(missing_keys, unexpected_keys)`` (both empty when ``strict``).
    """
    state = read_state_dict(source, what="detector checkpoint").state_dict
    return _unwrap(detector.network).load_state_dict(state, strict=strict)


def load_backbone_weights(
    detector: RetinaNetDetector,
    source: str | os.PathLike | Mapping[str, Tensor],
    prefix: str | None = None,
    transpose_kernels: bool | None = None,
) -> _IncompatibleKeys:
    """Initialise the detector's ResNet from a torchvision-layout ResNet state dict (ImageNet, GLoRIA).

    A thin wrapper over :func:`monai_xattn.networks.resnet_weights.load_encoder_weights` (``kind="gloria"``,
    ``strict=False``) on ``feature_extractor.body``. Keys are matched after removing ``prefix`` (found
    automatically as the part before ``layer1.0.conv1.weight``; GLoRIA's image encoder stores its trunk under e.g.
    ``gloria.img_encoder.model.``; ``monai_xattn`` GLoRIA checkpoints are read too). A first convolution with
    another number of input channels is summed (3 -> 1) or replicated (1 -> 3) over channels.

    Args:
        detector: a detector built on MONAI's ResNet-FPN extractor.
        source: file (loaded with ``weights_only=True``) or state dict.
        prefix: key prefix of the ResNet trunk in ``source``.
        transpose_kernels: torchvision ImageNet and official GLoRIA weights were learned on ``(H, W)`` arrays
            while MONAI images are ``(W, H)``; transposing every kernel makes the backbone compute exactly the
            (transposed) features the original network computes on the upright image. ``None`` (default) decides
            from the file's keys (:func:`~monai_xattn.networks.weights_frame`: ``monai_xattn`` GLoRIA checkpoints
            are already in MONAI's frame, everything else is transposed); ``True`` / ``False`` force it.

    Returns:
        ``(missing_keys, unexpected_keys)`` relative to the backbone; both are also logged. Keys of stages the
        FPN does not use (e.g. ``layer4``, ``fc``) appear as unexpected.

    Raises:
        ValueError: the source holds no (or more than one) ResNet trunk, a first convolution cannot be adapted,
            or a backbone tensor has another shape in the source (nothing is loaded then).
    """
    body = _unwrap(detector.network).feature_extractor.body
    name = "<state dict>" if isinstance(source, Mapping) else os.fspath(source)
    before = {k: v.detach().clone() for k, v in body.state_dict().items()}  # restored if shapes do not fit
    result = load_encoder_weights(
        body, source, "gloria", strict=False, transpose_kernels=transpose_kernels, prefix=prefix
    )
    if result.mismatched:
        body.load_state_dict(before)
        raise ValueError(
            f"backbone weights {name}: {len(result.mismatched)} tensors of another shape, e.g. "
            f"{result.mismatched[:4]} (another depth?)"
        )
    return _IncompatibleKeys(list(result.missing), sorted(result.unexpected + result.ignored))
