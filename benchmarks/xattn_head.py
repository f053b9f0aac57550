"""Cost of the cross-attention head + losses on top of a detector train step.

Times, on the same batch and weights, (a) a RetinaNet train step (``RoiDetector.forward_rois`` with targets:
detection losses, backward, SGD step) and (b) the same step with the cross-attention head trained jointly: the ROIs
and negatives of that same pass go through ``AttributeCrossAttention`` (phi, alpha, attribute logits, S_roi, S_text
for I, I_n and T_n) and ``XAttnLoss`` (triplets + BCE) is added to the detection losses. Prints the medians, the
ratio (b) / (a) (target <= 1.15), the head-only time, and peak memory. The runs alternate so that background load
hits both alike.

    python benchmarks/xattn_head.py                     # CPU profile: ResNet-18, 128 px, batch 2, 32 ROIs
    python benchmarks/xattn_head.py --depth 50 --size 512 --batch 8 --word-dim 300 --device cuda
"""

from __future__ import annotations

import statistics

import torch
from _common import detector_parser, peak_mb, synthetic_detection_batch, timed

from monai_xattn.losses.xattn import XAttnLoss
from monai_xattn.networks import create_roi_detector
from monai_xattn.networks.xattn import AttributeCrossAttention


def main() -> None:
    parser = detector_parser(__doc__.splitlines()[0])
    parser.add_argument("--attributes", type=int, default=22)
    parser.add_argument("--word-dim", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    torch.manual_seed(0)
    det = create_roi_detector(depth=args.depth, n_rois=args.n_rois).to(device).train()
    roi_dim = det.network.feature_extractor.out_channels
    head = AttributeCrossAttention(roi_dim, args.attributes, word_dim=args.word_dim).to(device)
    criterion = XAttnLoss()
    opt = torch.optim.SGD([*det.network.parameters(), *head.parameters()], lr=1e-4, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    b, a, d = args.batch, args.attributes, args.word_dim
    images, targets = synthetic_detection_batch(b, args.size, g, device)
    words, negatives = torch.randn(b, a, d, generator=g).to(device), torch.randn(b, a, d, generator=g).to(device)
    word_mask = (torch.arange(a)[None] < torch.randint(1, 6, (b, 1), generator=g)).to(device)
    attr_targets = (torch.rand(b, a, generator=g) < 0.2).float().to(device)

    def head_loss(out: dict) -> torch.Tensor:
        rois, neg = out["rois"], out["negatives"]
        h = head(rois["r"], rois["s"], rois["g"], rois["mask"], words, word_mask)
        phi_n = head.roi_embedding(neg["r"], neg["s"], neg["g"])
        s_roi_n, _ = head.match(phi_n, head.roi_weights(phi_n, neg["s"], neg["mask"]), neg["mask"], words, word_mask)
        _, s_text_n = head.match(h["phi"], h["alpha"], rois["mask"], negatives, word_mask)
        terms = criterion(
            h["s_roi"], s_roi_n, h["s_text"], s_text_n, word_mask.any(1), h["attribute_logits"], attr_targets
        )
        return terms["loss"]

    def step(with_head: bool) -> None:
        out = det.forward_rois(images, targets)
        loss = out["losses"]["classification"] + out["losses"]["box_regression"]
        if with_head:
            loss = loss + head_loss(out)
        opt.zero_grad()
        loss.backward()
        opt.step()

    with torch.no_grad():
        fixed = det.forward_rois(images, targets)
    fixed = {
        k: {n: t.detach().requires_grad_(t.is_floating_point()) for n, t in v.items()}
        for k, v in fixed.items()
        if k in ("rois", "negatives")
    }

    def head_only() -> None:
        head.zero_grad()
        head_loss(fixed).backward()

    fns = {"detector": lambda: step(False), "detector+head": lambda: step(True), "head only": head_only}
    for fn in fns.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(args.repeat):
        for name, fn in fns.items():
            times[name].append(timed(fn, device))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"device={device} depth={args.depth} size={args.size} batch={b} n_rois={args.n_rois} attributes={a} "
        f"word_dim={d} repeat={args.repeat} threads={args.threads}"
    )
    print(
        f"train step: detector {med['detector'] * 1e3:.1f} ms   detector+head {med['detector+head'] * 1e3:.1f} ms   "
        f"ratio {med['detector+head'] / med['detector']:.3f}   (head + losses alone: {med['head only'] * 1e3:.2f} ms, "
        f"{med['head only'] / med['detector']:.3f} of a detector step)"
    )
    print(f"peak memory ({'GPU allocated' if device.type == 'cuda' else 'process RSS'}): {peak_mb(device):.0f} MiB")


if __name__ == "__main__":
    main()
