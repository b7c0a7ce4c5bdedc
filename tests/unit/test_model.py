"""Generator and evaluator: shapes, checkpoint round trip (weights_only), warm start checks."""

from __future__ import annotations

import torch

from genline.model import Generator, GeneratorConfig, load_generator, save_generator


def test_generator_shapes_and_range():
    cfg = GeneratorConfig(num_classes=4, channels=3, image_size=6, hidden=32, depth=1)
    g = Generator(cfg).eval()
    with torch.no_grad():
        out = g(torch.tensor([0, 3, 1]), torch.randn(3, cfg.latent_dim) * 5)
    assert out.shape == (3, 3, 6, 6)
    assert out.min() >= 0 and out.max() <= 1


def test_checkpoint_round_trip_weights_only(tmp_path):
    cfg = GeneratorConfig(hidden=32, depth=1)
    g = Generator(cfg)
    torch.nn.init.normal_(g.net.out.weight)
    save_generator(tmp_path / "c.pt", g, dataset={"fingerprint": "abc"}, metrics={"fd": 1.0})
    raw = torch.load(tmp_path / "c.pt", weights_only=True)  # no pickled code
    assert raw["model_args"]["hidden"] == 32 and raw["dataset"]["fingerprint"] == "abc"
    back, ckpt = load_generator(tmp_path / "c.pt")
    assert back.cfg == cfg and ckpt["metrics"] == {"fd": 1.0}
    z = torch.randn(5, cfg.latent_dim)
    y = torch.arange(5)
    with torch.no_grad():
        assert torch.equal(g.eval()(y, z), back(y, z))
