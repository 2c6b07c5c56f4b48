"""FeatureFinding pieces, each against an independent computation (brute force, closed form,
finite differences, or torch's own schedulers)."""

import math
from itertools import combinations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from projects.toy_superposition import analysis as A
from projects.toy_superposition import featurefinding as FF
from projects.toy_superposition.data import all_k_hot
from projects.toy_superposition.hessian import (
    eigenvalue_histograms,
    eigenvalues_in_range,
    loss_hessian,
)
from projects.toy_superposition.interactive import (
    convex_hull_vertices,
    eigenvalue_histogram_figure,
    polyhedron_figure,
    weights_history_figure,
)
from projects.toy_superposition.models import Net, NetConfig, _activate
from projects.toy_superposition.train import (
    FixedDataset,
    TrainConfig,
    featurefinding_schedule,
    instance_loss,
    lr_at,
    train,
)


@pytest.mark.parametrize(("f", "k"), [(5, 1), (6, 2), (7, 3), (4, 4)])
def test_all_k_hot_is_every_k_subset_once(f: int, k: int) -> None:
    X = all_k_hot(f, k)
    assert X.shape == (math.comb(f, k), f)
    rows = [tuple(int(i) for i in torch.nonzero(r).flatten()) for r in X]
    assert rows == list(combinations(range(f), k))
    assert set(X.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="k must be"):
        all_k_hot(3, 4)


def test_shifted_activations_match_their_formulas() -> None:
    x = torch.linspace(-3, 3, 61)
    assert torch.equal(_activate(x, "relu_plus1"), torch.clamp(x + 1, min=0))
    assert torch.equal(_activate(x, "relu_minus1"), torch.clamp(x - 1, min=0))
    erf = torch.erf((x + 1) / math.sqrt(2))
    assert torch.allclose(_activate(x, "gelu_plus1"), 0.5 * (x + 1) * (1 + erf), atol=1e-6)
    with pytest.raises(ValueError, match="unknown activation"):
        _activate(x, "tanh")


def test_unit_weights_project_the_embedding_back_to_the_sphere_after_each_step() -> None:
    torch.manual_seed(0)
    cfg = NetConfig(5, 2, 1, unit_weights=True)
    model = Net(cfg, seed=3)
    x = torch.rand(1, 32, 5)
    W0 = model.W_in.detach().clone()[0]
    assert torch.allclose(W0.norm(dim=-1), torch.ones(5))
    assert model.b_out is not None
    b0 = model.b_out.detach().clone()[0]
    lr = 0.1
    train(
        model,
        FixedDataset(x),
        torch.ones(5),
        TrainConfig(steps=1, batch_size=32, lr=lr, optimizer="sgd"),
    )

    # by hand: gradient of the loss at the (unit) W0, a plain step, then back onto the sphere
    W = W0.clone().requires_grad_(True)
    b = b0.clone().requires_grad_(True)
    y = torch.relu(x[0] @ W @ W.T + b)
    gW, _ = torch.autograd.grad(((x[0] - y) ** 2).mean(), (W, b))
    expect = F.normalize(W0 - lr * gW, dim=-1)
    with torch.no_grad():
        model(x)  # the next forward pass projects
    assert torch.allclose(model.W_in.detach()[0], expect, atol=1e-6)


def test_standard_magnitude_gives_every_feature_the_mean_norm() -> None:
    W = torch.tensor([[3.0, 4.0], [0.0, 1.0], [1.0, 0.0]])  # norms 5, 1, 1 -> mean 7/3
    model = Net(NetConfig(3, 2, 1, standard_magnitude=True), initial_embed=W)
    expect = F.normalize(W, dim=-1) * (7 / 3)
    assert torch.allclose(model.W_in.detach()[0], expect)


def test_scale_factor_and_its_gradient_match_the_closed_form() -> None:
    W = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    b = torch.tensor([0.1, -0.2, 0.0])
    cfg = NetConfig(3, 2, 1, learnable_scale_factor=True, initial_scale_factor=1.7)
    model = Net(cfg, initial_embed=W, initial_bias=b)
    x = torch.rand(1, 16, 3)
    a = torch.relu(x[0] @ W @ W.T + b)
    assert torch.allclose(model(x)[0], 1.7 * a, atol=1e-6)
    loss = instance_loss(model(x), x, torch.ones(3)).sum()
    loss.backward()
    assert model.scale is not None
    assert model.scale.grad is not None
    closed = (-2 * a * (x[0] - 1.7 * a)).mean()  # d/ds mean((x - s a)^2)
    assert torch.allclose(model.scale.grad[0], closed, atol=1e-6)
    fixed = Net(NetConfig(3, 2, 1, initial_scale_factor=0.5), initial_embed=W, initial_bias=b)
    assert torch.allclose(fixed(x)[0], 0.5 * a, atol=1e-6)
    assert not any(n == "scale" for n, _ in fixed.named_parameters())


def test_initial_embed_and_bias_are_used_and_checked() -> None:
    W = torch.randn(2, 4, 3)
    model = Net(NetConfig(4, 3, 2), initial_embed=W, initial_bias=torch.full((4,), -0.5))
    assert torch.equal(model.W_in.detach(), W)
    assert model.b_out is not None
    assert torch.equal(model.b_out.detach(), torch.full((2, 4), -0.5))
    with pytest.raises(ValueError, match="initial_embed must have shape"):
        Net(NetConfig(4, 3, 2), initial_embed=torch.randn(4, 2))
    with pytest.raises(ValueError, match="output_bias=False"):
        Net(NetConfig(4, 3, 1, output_bias=False), initial_bias=torch.zeros(4))


def test_copy_tying_equals_tying_under_sgd_but_not_under_adam() -> None:
    x = all_k_hot(6, 1)[None].expand(2, -1, -1).contiguous()
    imp = torch.ones(6)

    def run(copy_tied: bool, opt: str) -> torch.Tensor:
        cfg = NetConfig(6, 2, 2, copy_tied=copy_tied, output_act="gelu", output_bias=False)
        m = Net(cfg, seed=1)
        if copy_tied:
            assert m.W_out is not None
            assert m.W_out.data_ptr() == m.W_in.data_ptr()  # one storage, two parameters
        train(m, FixedDataset(x), imp, TrainConfig(steps=50, batch_size=6, lr=0.5, optimizer=opt))  # type: ignore[arg-type]
        return m.W_in.detach().clone()

    assert torch.allclose(run(True, "sgd"), run(False, "sgd"), atol=1e-6)
    assert not torch.allclose(run(True, "adam"), run(False, "adam"), atol=1e-3)
    with pytest.raises(ValueError, match="needs tied=True"):
        Net(NetConfig(6, 2, tied=False, copy_tied=True))


def test_warmup_scheduler_matches_torch_schedulers() -> None:
    steps, max_lr, init, frac, final = 200, 2.0, 1e-3, 0.05, 0.2
    fields = featurefinding_schedule(steps, max_lr, init, frac, final)
    cfg = TrainConfig(**fields)
    # FeatureFinding's rule built from torch's own schedulers: linear ramp, then exponential
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=max_lr)
    w = fields["warmup_steps"]
    sched = torch.optim.lr_scheduler.SequentialLR(
        opt,
        [
            torch.optim.lr_scheduler.LinearLR(opt, init / max_lr, 1.0, total_iters=w),
            torch.optim.lr_scheduler.ExponentialLR(opt, fields["decay_rate"]),
        ],
        milestones=[w],
    )
    ref = []
    for _ in range(steps):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ours = [lr_at(t, cfg) for t in range(steps)]
    assert np.allclose(ours, ref, rtol=1e-9)
    assert lr_at(0, cfg) == pytest.approx(init)
    assert lr_at(steps, cfg) == pytest.approx(final)  # reaches final_lr after the decay horizon


def test_mlne_and_soft_cross_entropy_against_loops() -> None:
    g = torch.Generator().manual_seed(0)
    y, t = torch.randn(2, 5, 4, generator=g), torch.randn(2, 5, 4, generator=g)
    imp = torch.tensor([1.0, 0.5, 2.0, 1.5])
    mse = instance_loss(y, t, imp, "mse")
    assert torch.allclose(instance_loss(y, t, imp, "mln", 2.0), mse)
    loop = torch.tensor(
        [
            sum(
                float(imp[i]) * abs(float(t[k, b, i] - y[k, b, i])) ** 4
                for b in range(5)
                for i in range(4)
            )
            / 20
            for k in range(2)
        ]
    )
    assert torch.allclose(instance_loss(y, t, imp, "mln", 4.0), loop, rtol=1e-5)
    onehot = F.one_hot(torch.randint(0, 4, (2, 5), generator=g), 4).float()
    assert torch.allclose(
        instance_loss(y, onehot, imp, "soft_ce"), instance_loss(y, onehot, imp, "ce")
    )
    twohot = all_k_hot(4, 2)[:5][None].expand(2, -1, -1)
    logp = torch.log_softmax(y, dim=-1)
    hand = torch.stack([-(imp * twohot[k] * logp[k]).sum(-1).mean() for k in range(2)])
    assert torch.allclose(instance_loss(y, twohot, imp, "soft_ce"), hand)


def test_group_vectors_counts_a_pentagon_with_small_norms() -> None:
    angles = torch.arange(5) * 2 * math.pi / 5
    norms = torch.tensor([0.02, 0.15, 0.3, 0.45, 0.63])
    pent = norms[:, None] * torch.stack([angles.cos(), angles.sin()], dim=-1)
    assert A.count_directions(pent) == 5
    groups, dirs = A.group_vectors(pent, epsilon=1e-5)
    assert groups == [[0], [1], [2], [3], [4]]
    assert torch.allclose(dirs, F.normalize(pent, dim=-1), atol=1e-6)
    # scalar multiples group together; a row below min_norm is skipped
    W = torch.cat([pent, 3 * pent[:2], torch.tensor([[0.001, 0.0]])])
    groups, dirs = A.group_vectors(W, epsilon=1e-5)
    assert groups == [[0, 5], [1, 6], [2], [3], [4]]
    assert dirs.shape == (5, 2)


def test_float64_hessian_matches_finite_differences_tightly() -> None:
    cfg = NetConfig(3, 2, 1, output_act="relu_plus1", learnable_scale_factor=True)
    model = Net(cfg, seed=0)
    x = torch.rand(1, 32, 3, dtype=torch.float64)
    imp = torch.tensor([1.0, 0.7, 0.49], dtype=torch.float64)
    H = loss_hessian(model, x, x, imp, dtype=torch.float64, loss="mln", power=3.0)
    assert H.dtype == torch.float64
    names = [n for n, _ in model.named_parameters()]
    params = {n: p.detach().double() for n, p in model.named_parameters()}
    sizes = [params[n].numel() for n in names]
    theta = torch.cat([params[n].reshape(-1) for n in names])

    def grad_at(th: torch.Tensor) -> torch.Tensor:
        W, b, s = (
            c.reshape(params[n].shape) for c, n in zip(torch.split(th, sizes), names, strict=True)
        )
        W, b, s = (t.clone().requires_grad_(True) for t in (W, b, s))
        y = s[:, None, None] * torch.relu(x @ W @ W.transpose(1, 2) + b[:, None] + 1)
        loss = (imp * (x - y).abs() ** 3).mean()
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, (W, b, s))])

    eps = 1e-6
    fd = torch.stack(
        [
            (grad_at(theta + eps * e) - grad_at(theta - eps * e)) / (2 * eps)
            for e in torch.eye(len(theta), dtype=torch.float64)
        ]
    )
    assert torch.allclose(H, fd, atol=1e-8)


def test_eigenvalue_histograms_and_ranges_against_numpy() -> None:
    g = torch.Generator().manual_seed(0)
    eig = {
        0: torch.randn(40, generator=g),
        10: 3 * torch.randn(40, generator=g),
        20: torch.rand(40, generator=g),
    }
    edges, counts = eigenvalue_histograms(eig, bins=12)
    allv = torch.cat(list(eig.values())).numpy()
    assert edges[0] == allv.min()
    assert edges[-1] == allv.max()
    for row, v in zip(counts, eig.values(), strict=True):
        assert row.sum() == 40
        assert np.array_equal(row, np.histogram(v.numpy(), bins=edges)[0])
    got = eigenvalues_in_range(eig, -0.5, 0.5)
    assert got == {s: sum(1 for e in v.tolist() if -0.5 <= e <= 0.5) for s, v in eig.items()}
    fig = eigenvalue_histogram_figure(eig, bins=12)
    assert len(fig.data) == 3
    assert len(fig.layout.sliders[0].steps) == 3
    assert list(fig.data[1].y) == counts[1].tolist()


def test_convex_hull_vertices_match_brute_force_in_2d() -> None:
    g = torch.Generator().manual_seed(1)
    P = torch.randn(14, 2, generator=g).double()

    def in_triangle(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> bool:
        def cross(o: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> float:
            return float((u[0] - o[0]) * (v[1] - o[1]) - (u[1] - o[1]) * (v[0] - o[0]))

        s = [cross(a, b, p), cross(b, c, p), cross(c, a, p)]
        return all(x >= 0 for x in s) or all(x <= 0 for x in s)

    # a point is a hull vertex iff no triangle of three other points contains it
    brute = [
        i
        for i in range(len(P))
        if not any(
            in_triangle(P[i], P[a], P[b], P[c])
            for a, b, c in combinations([j for j in range(len(P)) if j != i], 3)
        )
    ]
    assert convex_hull_vertices(P) == brute
    cube = torch.tensor([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)])
    assert convex_hull_vertices(torch.cat([cube, torch.zeros(1, 3)])) == list(range(8))
    fig = polyhedron_figure(torch.cat([cube, torch.zeros(1, 3)]))
    assert len(fig.data[0].i) == 12  # 6 square faces = 12 triangles


def test_weights_history_figure_has_one_frame_per_snapshot() -> None:
    hist = [torch.randn(5, 2) for _ in range(4)]
    fig = weights_history_figure(hist, [0, 10, 20, 30])
    assert len(fig.data) == 4
    assert [d.visible for d in fig.data] == [True, False, False, False]
    assert len(fig.layout.sliders[0].steps) == 4
    xs = [v for v in fig.data[2].x if v is not None]
    assert np.allclose(xs[1::2], hist[2][:, 0].numpy())
    assert "<html" in fig.to_html(include_plotlyjs=False)


def test_featurefinding_settings_train_and_schedule_as_specified() -> None:
    s = FF.reduced(FF.SEED_SETTINGS["vary_seed"], epochs=60, f=8)
    cfg = FF.train_config(s)
    assert cfg.batch_size == 8
    assert cfg.steps == 60
    assert cfg.optimizer == "sgd"
    assert lr_at(0, cfg) == pytest.approx(s.initial_lr)
    assert lr_at(cfg.steps, cfg) == pytest.approx(s.final_lr)
    counts, loss = FF.group_count_vs_seed(3, s)
    assert len(counts) == 3
    assert all(1 <= c <= 8 for c in counts)
    assert loss.shape == (3,)
    half = FF.train_config(FF.reduced(FF.SEED_SETTINGS["mlne"], epochs=10))
    assert half.batch_size == 20
    assert half.steps == 20
    assert half.loss == "mln"
    assert half.loss_power == 4.0
