"""Model forward passes against hand-written formulas; instances are independent."""

import torch
from torch.nn import functional as F

from projects.toy_superposition.models import Net, NetConfig, ResNet, ToyModel


def test_toy_model_is_relu_of_wtw_x_plus_b() -> None:
    model = ToyModel(6, 3, n_instances=2, seed=3)
    with torch.no_grad():
        assert model.b_out is not None
        model.b_out.normal_()
    x = torch.rand(2, 5, 6)
    y = model(x)
    for k in range(2):
        W = model.W_in[k].detach().T  # the paper's [m, n] matrix
        b = model.b_out[k].detach()
        for s in range(5):
            expected = torch.clamp(W.T @ (W @ x[k, s]) + b, min=0)
            assert torch.allclose(y[k, s], expected, atol=1e-6)


def test_untied_net_with_hidden_layer_matches_formula() -> None:
    cfg = NetConfig(
        4, 3, 2, n_outputs=5, tied=False, hidden_bias=True, hidden_act="relu", output_act="gelu"
    )
    model = Net(cfg, seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    x = torch.randn(2, 7, 4)
    assert model.W_out is not None
    assert model.b_in is not None
    assert model.b_out is not None
    h = F.relu(x @ model.W_in + model.b_in[:, None])
    expected = F.gelu(h @ model.W_out + model.b_out[:, None])
    assert torch.allclose(model(x), expected, atol=1e-6)


def test_resnet_blocks_are_residual_and_tied_mlp_uses_transpose() -> None:
    cfg = NetConfig(4, 3, 1, n_blocks=2, d_mlp=5, tied_mlp=True)
    model = ResNet(cfg, seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    x = torch.rand(1, 3, 4)
    h = x @ model.W_in
    for i in range(2):
        W1 = model.W1[i]
        h = h + F.relu(h @ W1 + model.c1[i][:, None]) @ W1.transpose(1, 2) + model.c2[i][:, None]
    assert model.b_out is not None
    expected = F.relu(h @ model.W_in.transpose(1, 2) + model.b_out[:, None])
    assert torch.allclose(model(x), expected, atol=1e-5)
    # Zeroing the blocks' output weights makes the ResNet the plain Net.
    untied = ResNet(NetConfig(4, 3, 1, n_blocks=1, d_mlp=2), seed=0)
    plain = Net(NetConfig(4, 3, 1), seed=0)
    with torch.no_grad():
        assert untied.W2 is not None
        untied.W2[0].zero_()
    assert torch.allclose(untied(x), plain(x))


def test_instances_do_not_interact() -> None:
    model = ToyModel(5, 2, n_instances=3, seed=0)
    x = torch.rand(3, 8, 5)
    model(x)[1].sum().backward()
    grad = model.W_in.grad
    assert grad is not None
    assert grad[0].abs().max() == 0
    assert grad[2].abs().max() == 0
    assert grad[1].abs().max() > 0


def test_tied_net_rejects_different_output_width() -> None:
    import pytest

    with pytest.raises(ValueError, match="tied"):
        Net(NetConfig(4, 2, n_outputs=3, tied=True))
