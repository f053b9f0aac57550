"""SIIM run-length encodings -> segmentation masks aligned with the loaded image.

The datalist's ``rle`` rows (:func:`monai_xattn.data.build_siim_datalist`) describe the mask in the pixels of the
original file. :class:`RLEToMask` decodes them with :func:`monai_xattn.utils.rle.rle_decode_wh` straight into
MONAI's ``(1, W, H)`` frame (no copy and no transpose step a user could forget), and :class:`RLEToMaskd` takes
the size, and the meta data, from the image the mask belongs to, so that every later spatial transform
(``Resized``, ``RandAffined``, ``Invertd``) treats image and mask alike.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

from monai_xattn.utils.rle import RLE_MODES, rle_decode_wh

__all__ = ["RLEToMask", "RLEToMaskd", "RLEToMaskD", "RLEToMaskDict"]


class RLEToMask(Transform):
    """Decode SIIM RLE string(s) into a ``(1, W, H)`` mask in MONAI's frame.

    Args:
        mode: ``"relative"`` (SIIM ``train-rle.csv``) or ``"absolute"`` (1-based positions); a per-call ``mode``
            overrides it.
        dtype: dtype of the mask (float32 suits losses; uint8 saves memory in caches).
    """

    def __init__(self, mode: str = "relative", dtype: torch.dtype = torch.float32) -> None:
        if mode not in RLE_MODES:
            raise ValueError(f"mode must be one of {RLE_MODES}, got {mode!r}")
        self.mode = mode
        self.dtype = dtype

    def __call__(self, rle: str | Sequence[str], spatial_size: Sequence[int], mode: str | None = None) -> torch.Tensor:
        """Decode.

        Args:
            rle: one string or the image's list of strings (united); ``[]``, ``"-1"`` or ``""`` give an empty mask.
            spatial_size: ``(W, H)`` of the image the RLE was written for.
            mode: overrides the constructor's ``mode``.

        Returns:
            ``(1, W, H)`` tensor of 0/1.

        Raises:
            ValueError: a malformed string, or runs past the end of a ``W x H`` image.
        """
        mask = rle_decode_wh(rle, spatial_size, mode=mode or self.mode)
        return torch.from_numpy(mask[None]).to(self.dtype)


class RLEToMaskd(MapTransform):
    """Dictionary :class:`RLEToMask`: datalist ``rle`` rows -> a mask shaped and placed like the loaded image.

    Args:
        keys: the RLE key(s) (the datalist's ``"rle"``).
        image_key: the loaded ``(C, W, H)`` image whose spatial size (and meta data, when a ``MetaTensor``) the mask
            takes. The image must still be at the size of the file the RLE was written for: put this transform
            right after ``LoadCXRd``, before any resizing.
        mask_key: output key; ``None`` replaces each RLE key by its mask. With several keys, give one per key.
        mode_key: per-sample RLE mode key written by the adapter (``"rle_mode"``); ``mode`` is used when absent.
        mode: default RLE mode.
        id_key: the sample key named in error messages (``image_id``), falling back to the image's file name.
        dtype: mask dtype.
        allow_missing_keys: skip samples without the RLE key (e.g. inference on unlabelled images).
    """

    def __init__(
        self,
        keys: KeysCollection,
        image_key: str = "image",
        mask_key: str | Sequence[str] | None = "label",
        mode_key: str | None = "rle_mode",
        mode: str = "relative",
        id_key: str = "image_id",
        dtype: torch.dtype = torch.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if mask_key is None:
            self.mask_keys: tuple[Hashable, ...] = tuple(self.keys)
        else:
            self.mask_keys = (mask_key,) if isinstance(mask_key, str) else tuple(mask_key)
        if len(self.mask_keys) != len(self.keys):
            raise ValueError(f"give one mask_key per RLE key: {len(self.keys)} keys, {len(self.mask_keys)} mask keys")
        self.image_key = image_key
        self.mode_key = mode_key
        self.id_key = id_key
        self.decoder = RLEToMask(mode=mode, dtype=dtype)

    def _sample_name(self, d: Mapping[Hashable, Any]) -> str:
        if self.id_key in d:
            return str(d[self.id_key])
        meta = getattr(d.get(self.image_key), "meta", {})
        return str(meta.get("filename_or_obj", "<sample without id>"))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.image_key not in d:
            raise KeyError(
                f"{type(self).__name__}: sample {self._sample_name(d)} has no image key "
                f"{self.image_key!r} to take the mask size from"
            )
        image = d[self.image_key]
        mode = d.get(self.mode_key) if self.mode_key else None
        for key, mask_key in self.key_iterator(d, self.mask_keys):
            try:
                mask = self.decoder(d[key], image.shape[1:], mode=mode)
            except ValueError as err:
                raise ValueError(
                    f"sample {self._sample_name(d)}, key {key!r} (image {tuple(image.shape[1:])}): {err}"
                ) from None
            if isinstance(image, MetaTensor):
                # same affine and meta as the image: spatial transforms and Invertd then act on both alike
                mask = MetaTensor(mask, meta=dict(image.meta))
            d[mask_key] = mask
        return d


RLEToMaskD = RLEToMaskDict = RLEToMaskd
