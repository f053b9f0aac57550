"""Issue 6 acceptance: on phantom 'easy', the cross-attention localizer ("Proposed") beats CAM and GradCAM at
IoU@0.5 by a clear margin, every row trained and measured here, in one :func:`run_table1` call (CPU profile:
ResNet-18, 64 px; RetinaNet on ChestX-ray8 boxes, the head and the CAM classifier on MIMIC-CXR)."""

from __future__ import annotations

import pytest
import torch

from monai_xattn.table1 import run_table1


@pytest.mark.slow
def test_proposed_beats_cam_and_gradcam_on_easy_phantom(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the suite shares a small CPU; one thread keeps the run time predictable
    try:
        result = run_table1(
            tmp_path,
            n=200,
            size=64,
            difficulty="easy",
            seed=0,
            detector_epochs=10,
            head_epochs=3,
            cam_epochs=2,
            batch_size=4,
            methods=("CAM", "GradCAM", "RetinaNet", "Proposed"),
            device="cpu",
        )
    finally:
        torch.set_num_threads(threads)
    rows = result["rows"]
    n_test = sum(result["settings"]["test_images_with_boxes"].values())
    assert n_test >= 10, "too few test images with boxes for a meaningful comparison"

    def pooled(method: str) -> float:
        # both test splits together (MIMIC-CXR sidecar boxes and ChestX-ray8 boxes), weighted by their images
        counts = result["settings"]["test_images_with_boxes"]
        return sum(rows[method][d]["IoU@0.5"] * counts[d] for d in counts) / n_test

    proposed, cam, gradcam = pooled("Proposed"), pooled("CAM"), pooled("GradCAM")
    print(
        f"IoU@0.5 on {n_test} test images: Proposed {proposed:.3f}, CAM {cam:.3f}, GradCAM {gradcam:.3f}, "
        f"RetinaNet {pooled('RetinaNet'):.3f}"
    )
    # 0.1 of the pooled test images (~3 of ~28): the detector trained within a test's budget is weaker than the
    # documented Table 1's (RetinaNet IoU@0.5 ~0.6 there), which bounds what Proposed can reach here
    assert proposed >= max(cam, gradcam) + 0.1
