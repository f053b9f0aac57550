"""A tiny detection training run, wired as the ``cxr_retinanet`` bundle wires it, for the fault tests.

``python train_tiny_detector.py OUT [--epochs N] [--resume] [--kill-at I]``: trains a ResNet-18
``RoiDetector`` on 64 px synthetic blobs with MONAI's ``SupervisedTrainer``, an atomic ``last.pt`` every epoch,
``ResumeCheckpointLoader`` (``--resume``), ``SeedEachEpoch`` and ``StopOnNonFiniteLoss``. ``--kill-at I`` sends
the process SIGKILL after iteration ``I`` (a crash with no chance to clean up). Not a test module: the tests
run it as a subprocess.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import torch
from ignite.engine import Events
from monai.apps.detection.transforms.dictionary import RandFlipBoxd
from monai.data import DataLoader, Dataset
from monai.data.utils import no_collation
from monai.engines import SupervisedTrainer
from monai.utils import set_determinism

from monai_xattn.engines import AtomicCheckpointSaver, DetectionLoss, DetectionPrepareBatch, ResumeCheckpointLoader
from monai_xattn.engines.guards import SeedEachEpoch, StopOnNonFiniteLoss
from monai_xattn.networks import create_roi_detector

SIZE, N_IMAGES, BATCH = 64, 8, 2


def blobs(n: int, size: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Noisy images with one bright rectangle each, whose box is the target (MONAI ``(W, H)`` frame)."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        w, h = torch.randint(size // 6, size // 3, (2,), generator=g).tolist()
        x0, y0 = torch.randint(2, size - max(w, h) - 2, (2,), generator=g).tolist()
        image = 0.3 + 0.1 * torch.randn(1, size, size, generator=g)
        image[:, x0 : x0 + w, y0 : y0 + h] += 0.4
        box = torch.tensor([[x0, y0, x0 + w, y0 + h]], dtype=torch.float32)
        items.append({"image": image, "boxes": box, "labels": torch.zeros(1, dtype=torch.long)})
    return items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--kill-at", type=int, default=0)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    set_determinism(0)
    s = SIZE // 8
    detector = create_roi_detector(
        depth=18,
        returned_layers=(1, 2),
        base_anchor_shapes=((s, s), (s * 3 // 2, s * 3 // 4), (s * 3 // 4, s * 3 // 2)),
        n_rois=4,
        hns_batch_size_per_image=32,
    )
    # shuffled and randomly flipped, as the bundles train: SeedEachEpoch makes both replay after a resume
    flip = RandFlipBoxd("image", "boxes", "image", prob=0.5, spatial_axis=0)
    data = Dataset(blobs(N_IMAGES, SIZE, seed=1), transform=flip)
    loader = DataLoader(data, batch_size=BATCH, shuffle=True, collate_fn=no_collation, num_workers=0)
    optimizer = torch.optim.Adam(detector.network.parameters(), lr=1e-3)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=args.epochs,
        train_data_loader=loader,
        network=detector,
        optimizer=optimizer,
        loss_function=DetectionLoss(),
        prepare_batch=DetectionPrepareBatch(),
        decollate=False,
    )
    state = {"network": detector.network, "optimizer": optimizer, "trainer": trainer}
    ResumeCheckpointLoader(os.path.join(args.out, "last.pt"), state, enabled=args.resume).attach(trainer)
    SeedEachEpoch(0).attach(trainer)
    StopOnNonFiniteLoss().attach(trainer)
    AtomicCheckpointSaver(args.out, state).attach(trainer)

    if args.kill_at:

        @trainer.on(Events.ITERATION_COMPLETED)
        def crash(engine):
            if engine.state.iteration == args.kill_at:
                print(f"killing at iteration {engine.state.iteration}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)

    trainer.run()
    print(f"finished at epoch {trainer.state.epoch}, iteration {trainer.state.iteration}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
