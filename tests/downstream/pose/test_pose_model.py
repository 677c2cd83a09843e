"""The pose head: sine PE hand values, shapes, teacher forcing, QKA gradients, learned-PE switch."""

import math

import torch

from downstream.pose.model import PoseHead
from downstream.pose.pos_encoding import PositionEncoding, sine_2d


def test_sine_pe_hand_values():
    pe = sine_2d(2, 3, num_feats=4, temperature=10000.0)  # (6, 8): [y sin, y cos, ..., x sin, x cos, ...]
    assert pe.shape == (6, 8)
    # token (row 1, col 2) = index 5: y = 2, x = 3 (positions count from 1, not normalised)
    y, x = 2.0, 3.0
    want = [math.sin(y), math.cos(y), math.sin(y / 100), math.cos(y / 100),
            math.sin(x), math.cos(x), math.sin(x / 100), math.cos(x / 100)]
    assert torch.allclose(pe[5], torch.tensor(want), atol=1e-6)
    assert PositionEncoding("sine", (2, 3), 8)().equal(pe)
    learned = PositionEncoding("learned", (2, 3), 8)
    assert learned().shape == (6, 8) and len(list(learned.parameters())) == 2
    assert len(list(PositionEncoding("sine", (2, 3), 8).parameters())) == 0


def test_head_shapes_teacher_forcing_and_qka_gradient():
    torch.manual_seed(0)
    head = PoseHead(3, 16, (2, 3), dim=32, heads=4, ffn=32, dropout=0.0, layers_x=(2, 1), layers_q=(1, 1),
                    pos_encoding="sine")
    tokens = torch.randn(5, 6, 16)
    forced = torch.tensor([2, 2, 0, 1, 1])
    out = head(tokens, forced)
    assert out.x.shape == (5, 3) and out.q.shape == (5, 4) and out.scene_logp.shape == (5, 3)
    assert torch.allclose(out.scene_logp.exp().sum(1), torch.ones(5), atol=1e-6)
    assert out.scene.equal(forced) and len(out.records["position"]) == 2 and len(out.records["orientation"]) == 1
    free = head(tokens)
    assert free.scene.equal(free.scene_logp.argmax(1))
    # the regressors read the chosen scene's latent: forcing the argmax scene gives the same output
    again = head(tokens, free.scene)
    assert torch.allclose(again.x, free.x) and torch.allclose(again.q, free.q)
    # QKA moves the q/k in-projections of the encoders only
    qka = out.qka()
    (qka["position"] + qka["orientation"]).backward()
    enc_k = head.branch["position"].encoder[0].attn.k_proj.bias.grad
    assert enc_k is not None and enc_k.abs().sum() > 0
    assert head.reg_x[0].weight.grad is None and head.branch["position"].decoder[0].cross_attn.q_proj.weight.grad is None
    # attention probabilities on request: (B, heads, N, N) rows summing to 1
    attn = head.eval()(tokens, want_attn=True).records["position"][1].attn
    assert attn.shape == (5, 4, 6, 6) and torch.allclose(attn.sum(-1), torch.ones(5, 4, 6), atol=1e-5)


def test_wrong_token_count_is_a_clear_error():
    head = PoseHead(2, 8, (2, 2), dim=16, heads=2, ffn=16, layers_x=(1, 1), layers_q=(1, 1))
    try:
        head(torch.randn(1, 9, 8))
    except ValueError as exc:
        assert "(2, 2) token grid" in str(exc) and "training image size" in str(exc)
    else:
        raise AssertionError("expected a ValueError")


def _top(t):
    return float(t.detach().abs().max())


def _bounds(head):
    attn = head.branch["position"].encoder[0].attn
    return attn, head.branch["position"].encoder[0].ffn[0]


def test_init_as_multihead_attention_and_detr():
    from downstream.pose.initialization import packed_in_projection_bound

    torch.manual_seed(0)
    d, ffn = 64, 128
    head = PoseHead(2, 16, (2, 2), dim=d, heads=4, ffn=ffn, layers_x=(1, 1), layers_q=(1, 1), init="ms_transformer")
    attn, lin = _bounds(head)
    packed = math.sqrt(6 / (d + 3 * d))  # Xavier-uniform on the (3d, d) packed in_proj_weight
    assert packed_in_projection_bound(d) == packed
    for w in (attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight):
        assert _top(w) <= packed and _top(w) > 0.95 * packed
    for b in (attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias, attn.out_proj.bias):
        assert _top(b) == 0.0  # MultiheadAttention: in_proj_bias and out_proj.bias zero
    xav_out = math.sqrt(6 / (d + d))
    assert 0.95 * xav_out < _top(attn.out_proj.weight) <= xav_out
    assert 0.95 * math.sqrt(6 / (d + ffn)) < _top(lin.weight) <= math.sqrt(6 / (d + ffn))
    # the scene classifier keeps torch's Linear default: |w| <= 1 / sqrt(fan_in) = 1 / sqrt(2d)
    assert _top(head.scene_embed.weight) <= 1 / math.sqrt(2 * d)
    ours = PoseHead(2, 16, (2, 2), dim=d, heads=4, ffn=ffn, layers_x=(1, 1), layers_q=(1, 1), init="xavier_all")
    attn, _ = _bounds(ours)
    assert _top(attn.q_proj.weight) > packed  # each d x d matrix: bound sqrt(6 / 2d)
    assert _top(ours.scene_embed.weight) > 1 / math.sqrt(2 * d)


def test_learned_position_table_shared_or_per_branch():
    shared = PoseHead(2, 8, (2, 3), dim=16, heads=2, ffn=16, layers_x=(1, 1), layers_q=(1, 1))
    assert list(shared.pos) == ["shared"] and len(list(shared.pos.parameters())) == 2
    own = PoseHead(2, 8, (2, 3), dim=16, heads=2, ffn=16, layers_x=(1, 1), layers_q=(1, 1), shared_pos=False)
    assert list(own.pos) == ["position", "orientation"] and len(list(own.pos.parameters())) == 4
    # MS-Transformer: the orientation branch may have other layer counts than the position branch
    assert len(own.branch["orientation"].encoder) == 1 and len(shared.branch["position"].decoder) == 1
