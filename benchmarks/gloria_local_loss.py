"""Speed and memory of the batched GLoRIA local loss and word-piece aggregation, against per-caption/token loops.

Run: ``python benchmarks/gloria_local_loss.py`` (defaults: B=48, D=768, 19x19 regions, 8-24 words, float32, CPU,
forward + backward). Times are the best of ``--repeat`` runs after one warm-up, the variants taking turns in one
process so that the load of a shared machine hits them alike. Peak memory is read in a fresh process per variant:
on CPU the peak resident set size above the process's size once the inputs exist; on CUDA
``max_memory_allocated``. The printed ratios compare variants measured in this same run.

Variants of the local loss:
- ``official-loop``: one caption at a time, structured as the official code (words repeated over the images,
  attention through reshaped copies; the official code slices each caption to its length, so the captions'
  words are left-aligned here),
- ``loop``: one caption at a time, without the copies (a fairer, faster loop),
- ``einsum``: all pairs at once but building the ``(B, B, T, D)`` context tensor,
- ``batched``: :func:`monai_xattn.losses.gloria.local_loss` (dot products reused, Gram-matrix norms, no context).

Word-piece aggregation: ``loop`` (per token), ``batched`` (:func:`monai_xattn.networks.gloria.aggregate_word_pieces`)
and ``read-once``, no aggregation but one sum over the token vectors: the memory traffic floor of any batched
version, measured in the same turns.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import torch
import torch.nn.functional as F

from monai_xattn.losses.gloria import local_loss
from monai_xattn.networks.gloria import aggregate_word_pieces


def official_loop_local_loss(regions, words, word_mask, temp1=4.0, temp2=5.0, temp3=10.0):
    """The official code's structure: per caption, words repeated over images, attention through reshapes."""
    b, d, h, w = regions.shape
    m = h * w
    context = regions.view(b, d, m)
    rows = []
    for j in range(words.shape[0]):
        n = int(word_mask[j].sum())
        word = words[j, :, :n].unsqueeze(0).contiguous().repeat(b, 1, 1)  # (B, D, n)
        attn = torch.bmm(context.transpose(1, 2).contiguous(), word).view(b * m, n)
        attn = torch.softmax(attn, dim=-1).view(b, m, n).transpose(1, 2).contiguous().view(b * n, m)
        attn = torch.softmax(attn * temp1, dim=-1).view(b, n, m)
        weighted = torch.bmm(context, attn.transpose(1, 2).contiguous())  # (B, D, n)
        word_rows = word.transpose(1, 2).contiguous().view(b * n, d)
        weighted_rows = weighted.transpose(1, 2).contiguous().view(b * n, d)
        relevance = F.cosine_similarity(word_rows, weighted_rows).view(b, n)
        rows.append(torch.log(relevance.mul(temp2).exp().sum(dim=1, keepdim=True)))
    logits = temp3 * torch.cat(rows, dim=1)
    labels = torch.arange(b, device=regions.device)
    return F.cross_entropy(logits, labels), F.cross_entropy(logits.t(), labels)


def loop_local_loss(regions, words, word_mask, temp1=4.0, temp2=5.0, temp3=10.0):
    """A tighter per-caption loop: no repeated words or reshaped copies."""
    b = regions.shape[0]
    context = regions.flatten(2)
    rows = []
    for j in range(words.shape[0]):
        word = words[j][:, word_mask[j]].unsqueeze(0).expand(b, -1, -1)
        attn = torch.softmax(temp1 * torch.softmax(torch.bmm(context.transpose(1, 2), word), dim=2), dim=1)
        relevance = F.cosine_similarity(word, torch.bmm(context, attn), dim=1)
        rows.append(torch.log(torch.exp(temp2 * relevance).sum(dim=1)))
    logits = temp3 * torch.stack(rows, dim=1)
    labels = torch.arange(b, device=regions.device)
    return F.cross_entropy(logits, labels), F.cross_entropy(logits.t(), labels)


def einsum_local_loss(regions, words, word_mask, temp1=4.0, temp2=5.0, temp3=10.0):
    v = regions.flatten(2)  # (B, D, M)
    dots = torch.einsum("idm,jdt->ijtm", v, words)
    dots = dots.masked_fill(~word_mask[None, :, :, None], float("-inf"))
    attn = torch.softmax(temp1 * torch.softmax(dots, dim=2), dim=3)
    context = torch.einsum("ijtm,idm->ijtd", attn, v)
    relevance = F.cosine_similarity(words.transpose(1, 2)[None], context, dim=-1)
    logits = temp3 * (temp2 * relevance).masked_fill(~word_mask[None], float("-inf")).logsumexp(dim=-1)
    labels = torch.arange(regions.shape[0], device=regions.device)
    return F.cross_entropy(logits, labels), F.cross_entropy(logits.t(), labels)


def batched_local_loss(regions, words, word_mask):
    return local_loss(regions, words, word_mask)[:2]


LOSSES = {
    "official-loop": official_loop_local_loss,
    "loop": loop_local_loss,
    "einsum": einsum_local_loss,
    "batched": batched_local_loss,
}


def loop_aggregate(hidden, word_ids):
    b, length, d = hidden.shape
    t = int(word_ids.max()) + 1
    out = hidden.new_zeros(b, t, d)
    for i in range(b):
        for k in range(length):
            w = int(word_ids[i, k])
            if w >= 0:
                out[i, w] += hidden[i, k]
    return out


def batched_aggregate(hidden, word_ids):
    return aggregate_word_pieces(hidden, word_ids)[0]


def read_once(hidden, word_ids):
    """Not an aggregation: one pass over the token vectors, the memory traffic any batched aggregation must pay."""
    return hidden.sum(dim=1, keepdim=True)


AGGREGATIONS = {"loop": loop_aggregate, "batched": batched_aggregate, "read-once": read_once}


def _reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS record (Linux: ``clear_refs`` 5), so that import-time peaks do not count."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _rss_mib() -> float:
    """Peak resident set size of this process in MiB (``VmHWM``; ``ru_maxrss`` where /proc is absent)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _loss_inputs(args, device):
    g = torch.Generator().manual_seed(0)
    regions = 0.1 * torch.randn(args.batch, args.dim, args.grid, args.grid, generator=g)
    words = 0.1 * torch.randn(args.batch, args.dim, args.max_words, generator=g)
    lengths = torch.randint(args.min_words, args.max_words + 1, (args.batch,), generator=g)
    mask = torch.arange(args.max_words)[None] < lengths[:, None]
    return regions.to(device).requires_grad_(), words.to(device).requires_grad_(), mask.to(device)


def _aggregation_inputs(args, device):
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(args.batch, args.tokens, args.dim, generator=g)
    # 1-3 pieces per word, [CLS] first, [SEP] and padding after the last word
    pieces = torch.randint(1, 4, (args.batch, args.tokens), generator=g)
    word_ids = torch.full((args.batch, args.tokens), -1, dtype=torch.long)
    lengths = torch.randint(args.min_words, args.max_words + 1, (args.batch,), generator=g)
    for i in range(args.batch):
        ids = torch.repeat_interleave(torch.arange(int(lengths[i])), pieces[i, : int(lengths[i])])
        ids = ids[: args.tokens - 2]
        word_ids[i, 1 : 1 + len(ids)] = ids
    return hidden.to(device), word_ids.to(device)


def _step_fn(kind: str, name: str, args, device):
    if kind == "loss":
        regions, words, mask = _loss_inputs(args, device)

        def step():
            regions.grad = words.grad = None
            loss0, loss1 = LOSSES[name](regions, words, mask)
            (loss0 + loss1).backward()
            return float((loss0 + loss1).detach())
    else:
        hidden, word_ids = _aggregation_inputs(args, device)

        def step():
            return float(AGGREGATIONS[name](hidden, word_ids).sum().detach())

    return step


def _peak(kind: str, name: str, args, queue) -> None:
    """Peak memory of one step, in a fresh process: max RSS (CPU) or max allocated (CUDA) above the inputs."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    step = _step_fn(kind, name, args, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device) / 2**20
        value = step()
        queue.put((torch.cuda.max_memory_allocated(device) / 2**20 - base, value))
    else:
        _reset_peak_rss()
        base = _rss_mib()
        value = step()
        queue.put((_rss_mib() - base, value))


def peak_memory(kind: str, name: str, args) -> tuple[float, float]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak, args=(kind, name, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def best_times(kind: str, names, args) -> dict[str, float]:
    """Best time of each variant; the variants take turns, so that a shared machine's load hits them alike."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    steps = {name: _step_fn(kind, name, args, device) for name in names}
    for step in steps.values():
        step()  # warm-up
    times = {name: [] for name in names}
    for _ in range(args.repeat):
        for name, step in steps.items():
            sync()
            start = time.perf_counter()
            step()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=48)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--grid", type=int, default=19)
    parser.add_argument("--min-words", type=int, default=8)
    parser.add_argument("--max-words", type=int, default=24)
    parser.add_argument("--tokens", type=int, default=97, help="token slots for the aggregation benchmark")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--aggregation-repeat", type=int, default=100, help="passes of the sub-millisecond aggregation (best counts)"
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-einsum", action="store_true", help="do not run the naive batched variant")
    args = parser.parse_args()
    print(
        f"local loss: B={args.batch} D={args.dim} regions={args.grid}x{args.grid} words={args.min_words}-"
        f"{args.max_words} float32 {args.device} threads={args.threads}, forward+backward, best of {args.repeat}"
    )
    names = [n for n in LOSSES if not (n == "einsum" and args.skip_einsum)]
    times = best_times("loss", names, args)
    results = {name: (times[name], *peak_memory("loss", name, args)) for name in names}
    for name, (t, peak, value) in results.items():
        print(f"  {name:<14} {t * 1000:9.1f} ms  peak {peak:8.1f} MiB  loss {value:.6f}")
    for ref in ("official-loop", "loop"):
        ref_t, ref_peak, _ = results[ref]
        for name, (t, peak, _) in results.items():
            if name not in ("official-loop", "loop"):
                print(f"  {name} vs {ref}: {ref_t / t:.1f}x faster, peak memory x{peak / max(ref_peak, 1e-9):.2f}")
    agg_args = argparse.Namespace(**{**vars(args), "repeat": args.aggregation_repeat})
    print(f"word-piece aggregation: B={args.batch} L={args.tokens} D={args.dim}, forward, best of {agg_args.repeat}")
    times = best_times("aggregation", list(AGGREGATIONS), agg_args)
    agg = {name: (times[name], *peak_memory("aggregation", name, args)) for name in AGGREGATIONS}
    for name, (t, peak, value) in agg.items():
        print(f"  {name:<14} {t * 1000:9.2f} ms  peak {peak:8.1f} MiB  checksum {value:.4f}")
    print(f"  speed-up batched vs loop: {agg['loop'][0] / agg['batched'][0]:.1f}x")
    # the variants take turns, so each starts with the token vectors out of cache (as after the encoder in training)
    print(
        f"  batched / read-once: {agg['batched'][0] / agg['read-once'][0]:.2f} (the floor of a batched aggregation "
        f"is one read of the {args.batch * args.tokens * args.dim * 4 / 2**20:.1f} MiB of token vectors)"
    )


if __name__ == "__main__":
    main()
