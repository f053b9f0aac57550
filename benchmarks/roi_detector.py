"""Cost of the ROI-feature path: RoiDetector.forward_rois vs MONAI's RetinaNetDetector on the same batch.

Prints, for a train step (forward, loss, backward, SGD step) and for inference, the median time of each path, the
ratio ours / MONAI (target <= 1.10 for training), images per second at inference, and peak memory. Both paths use
the same detector object and weights; the runs alternate so that background load hits both alike.

    python benchmarks/roi_detector.py                        # CPU profile: ResNet-18, 128 px, batch 2
    python benchmarks/roi_detector.py --depth 50 --size 512 --batch 4 --device cuda
"""

from __future__ import annotations

import statistics

import torch
from _common import detector_parser, peak_mb, synthetic_detection_batch, timed
from monai.apps.detection.networks.retinanet_detector import RetinaNetDetector

from monai_xattn.networks import create_roi_detector


def main() -> None:
    parser = detector_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    torch.manual_seed(0)
    det = create_roi_detector(depth=args.depth, n_rois=args.n_rois).to(device)
    opt = torch.optim.SGD(det.network.parameters(), lr=1e-4, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    images, targets = synthetic_detection_batch(args.batch, args.size, g, device)

    def train_monai():
        losses = RetinaNetDetector.forward(det, images, targets)
        loss = losses["classification"] + losses["box_regression"]
        opt.zero_grad()
        loss.backward()
        opt.step()

    def train_ours():
        out = det.forward_rois(images, targets)
        # stands in for the cross-attention head: its gradient reaches the backbone through RoIAlign and scores
        head = out["rois"]["r"].square().mean() + out["rois"]["s"].mean() + out["negatives"]["r"].square().mean()
        loss = out["losses"]["classification"] + out["losses"]["box_regression"] + 1e-3 * head
        opt.zero_grad()
        loss.backward()
        opt.step()

    @torch.no_grad()
    def infer_monai():
        RetinaNetDetector.forward(det, images)

    @torch.no_grad()
    def infer_ours():
        det.forward_rois(images)

    results = {}
    for mode, pair in (("train", (train_monai, train_ours)), ("infer", (infer_monai, infer_ours))):
        det.train(mode == "train")
        for fn in pair:  # warm-up (anchors, allocator, cudnn)
            fn()
        times: dict[str, list[float]] = {"monai": [], "ours": []}
        for _ in range(args.repeat):
            times["monai"].append(timed(pair[0], device))
            times["ours"].append(timed(pair[1], device))
        results[mode] = {k: statistics.median(v) for k, v in times.items()}

    print(
        f"device={device} depth={args.depth} size={args.size} batch={args.batch} n_rois={args.n_rois} "
        f"repeat={args.repeat} threads={args.threads}"
    )
    for mode, r in results.items():
        line = f"{mode:5s}  MONAI RetinaNetDetector {r['monai'] * 1e3:8.1f} ms   RoiDetector {r['ours'] * 1e3:8.1f} ms"
        line += f"   ratio {r['ours'] / r['monai']:.3f}"
        if mode == "infer":
            line += f"   images/s MONAI {args.batch / r['monai']:.1f} ours {args.batch / r['ours']:.1f}"
        print(line)
    print(f"peak memory ({'GPU allocated' if device.type == 'cuda' else 'process RSS'}): {peak_mb(device):.0f} MiB")


if __name__ == "__main__":
    main()
