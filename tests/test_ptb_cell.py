"""The compiled recurrent cell: published NASCell equations, a per-node reference, gradients, the LM."""

from __future__ import annotations

import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nas_env.builders.language_model import build_language_model, count_parameters
from nas_env.builders.rnn_cell import CompiledCell
from nas_env.search_spaces.rnn_cell import NASCELL, TANH_RNN, RnnCellArchitecture, RnnCellSearchSpace

ACT = {"identity": lambda v: v, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Smoke children and tiny cells are faster on one thread (no OpenMP barriers on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tf_nascell_step(x, c_prev, m_prev, w_inputs, w_m, bias):
    """tf.contrib.rnn.NASCell.__call__ (use_biases=True, no projection), transcribed from TF 1.x."""
    sigmoid, tanh, relu = torch.sigmoid, torch.tanh, torch.relu
    m_matrix = m_prev @ w_m + bias
    inputs_matrix = x @ w_inputs
    m = torch.chunk(m_matrix, 8, dim=1)
    i = torch.chunk(inputs_matrix, 8, dim=1)
    layer1_0 = sigmoid(i[0] + m[0])
    layer1_1 = relu(i[1] + m[1])
    layer1_2 = sigmoid(i[2] + m[2])
    layer1_3 = relu(i[3] * m[3])
    layer1_4 = tanh(i[4] + m[4])
    layer1_5 = sigmoid(i[5] + m[5])
    layer1_6 = tanh(i[6] + m[6])
    layer1_7 = sigmoid(i[7] + m[7])
    l2_0 = tanh(layer1_0 * layer1_1)
    l2_1 = tanh(layer1_2 + layer1_3)
    l2_2 = tanh(layer1_4 * layer1_5)
    l2_3 = sigmoid(layer1_6 + layer1_7)
    l2_0 = tanh(l2_0 + c_prev)  # inject the cell
    l3_0_pre = l2_0 * l2_1
    new_c = l3_0_pre
    l3_0 = l3_0_pre
    l3_1 = tanh(l2_2 + l2_3)
    new_m = tanh(l3_0 * l3_1)
    return new_m, new_c


def reference_step(arch: RnnCellArchitecture, cell: CompiledCell, x, h, c):
    """Node by node, children of inner node k are 2(k - base) and 2(k - base) + 1."""
    base, hidden = arch.base, cell.hidden_size
    xp = x @ cell.weight_x.T
    hp = h @ cell.weight_h.T + cell.bias
    out: dict[int, torch.Tensor] = {}
    c_new = c
    for k, node in enumerate(arch.nodes):
        if k < base:
            a, b = xp[:, k * hidden : (k + 1) * hidden], hp[:, k * hidden : (k + 1) * hidden]
        else:
            a, b = out[2 * (k - base)], out[2 * (k - base) + 1]
        pre = a + b if node.combination == "add" else a * b
        out[k] = ACT[node.activation](pre)
        if arch.memory is not None and k == arch.memory.inject_node:
            inj = arch.memory.inject
            merged = out[k] + c if inj.combination == "add" else out[k] * c
            out[k] = ACT[inj.activation](merged)
        if arch.memory is not None and k == arch.memory.output_node:
            c_new = pre
    return out[len(arch.nodes) - 1], c_new


def run_cell(cell: CompiledCell, xs, h, c):
    hs, (h_t, c_t) = cell(xs, (h, c))
    return hs, h_t, c_t


def test_nascell_from_string_computes_the_published_equations() -> None:
    torch.manual_seed(0)
    arch = RnnCellArchitecture.from_str(NASCELL.to_str())
    cell = CompiledCell(arch, input_size=7, hidden_size=5).double()
    xs = torch.randn(6, 3, 7, dtype=torch.double)
    h = torch.randn(3, 5, dtype=torch.double)
    c = torch.randn(3, 5, dtype=torch.double)
    hs, h_t, c_t = run_cell(cell, xs, h, c)
    # TF keeps weights as [input, 8 * units] with leaf i in columns i*H:(i+1)*H; ours are transposed.
    w_inputs, w_m = cell.weight_x.detach().T, cell.weight_h.detach().T
    for t in range(6):
        h, c = tf_nascell_step(xs[t], c, h, w_inputs, w_m, cell.bias.detach())
        torch.testing.assert_close(hs[t], h)
    torch.testing.assert_close(h_t, h)
    torch.testing.assert_close(c_t, c)


def test_paper_base2_example_and_tanh_rnn() -> None:
    torch.manual_seed(1)
    arch = RnnCellArchitecture.from_str("add:tanh mul:relu / mul:sigmoid ; c_in 0 add:relu ; c_out 1")
    cell = CompiledCell(arch, 4, 3).double()
    x, h, c = (torch.randn(2, n, dtype=torch.double) for n in (4, 3, 3))
    _, h_t, c_t = run_cell(cell, x[None], h, c)
    w1, w3 = cell.weight_x[:3].T, cell.weight_x[3:].T
    w2, w4 = cell.weight_h[:3].T, cell.weight_h[3:].T
    b2, b4 = cell.bias[:3], cell.bias[3:]
    a0 = torch.tanh(x @ w1 + h @ w2 + b2)
    a1 = torch.relu((x @ w3) * (h @ w4 + b4))
    a0_new = torch.relu(a0 + c)
    torch.testing.assert_close(h_t, torch.sigmoid(a0_new * a1))
    torch.testing.assert_close(c_t, (x @ w3) * (h @ w4 + b4))

    rnn = CompiledCell(TANH_RNN, 4, 3).double()
    _, h_t, c_t = run_cell(rnn, x[None], h, c)
    w = rnn.weight_x[:3] + rnn.weight_x[3:]
    u = rnn.weight_h[:3] + rnn.weight_h[3:]
    torch.testing.assert_close(h_t, torch.tanh(x @ w.T + h @ u.T + rnn.bias[:3] + rnn.bias[3:]))
    torch.testing.assert_close(c_t, c)  # no memory: c is carried unchanged


@st.composite
def archs(draw: st.DrawFn) -> RnnCellArchitecture:
    space = RnnCellSearchSpace(base=draw(st.sampled_from([2, 4, 8])), memory=draw(st.booleans()))
    return space.decode([draw(st.integers(0, s.num_choices - 1)) for s in space.schedule()])


@settings(max_examples=100, deadline=None)
@given(archs(), st.integers(0, 2**16))
def test_every_cell_compiles_right_shape_finite_and_matches_reference(
    arch: RnnCellArchitecture, seed: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    cell = CompiledCell(arch, input_size=5, hidden_size=6)
    xs = torch.randn(4, 3, 5, generator=gen)
    h, c = torch.randn(3, 6, generator=gen), torch.randn(3, 6, generator=gen)
    hs, (h_t, c_t) = cell(xs, (h, c))
    assert hs.shape == (4, 3, 6) and h_t.shape == (3, 6) and c_t.shape == (3, 6)
    assert torch.isfinite(hs).all() and torch.isfinite(c_t).all()
    with torch.no_grad():
        for t in range(4):
            h, c = reference_step(arch, cell, xs[t], h, c)
            torch.testing.assert_close(hs[t], h)
        torch.testing.assert_close(c_t, c)
    assert cell(xs)[0].shape == (4, 3, 6)  # zero initial state


@settings(max_examples=25, deadline=None)
@given(archs(), st.integers(0, 2**16))
def test_fused_backward_equals_autograd(arch: RnnCellArchitecture, seed: int) -> None:
    torch.manual_seed(seed)
    cell = CompiledCell(arch, 4, 3).double()
    xs = torch.randn(5, 2, 4, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.double, requires_grad=True)
    c0 = torch.randn(2, 3, dtype=torch.double, requires_grad=True)
    weights = torch.randn(5, 2, 3, dtype=torch.double), torch.randn(2, 3, dtype=torch.double)
    grads = []
    for fused in (True, False):
        cell.fused = fused
        hs, (_, c_t) = cell(xs, (h0, c0))
        loss = (hs * weights[0]).sum() + (c_t * weights[1]).sum()
        grads.append(torch.autograd.grad(loss, [xs, h0, c0, *cell.parameters()]))
    for fused_grad, autograd_grad in zip(*grads, strict=True):
        torch.testing.assert_close(fused_grad, autograd_grad)


def test_fused_backward_passes_gradcheck() -> None:
    torch.manual_seed(0)
    for arch in (NASCELL, TANH_RNN):
        cell = CompiledCell(arch, 3, 2).double()
        inputs = (
            torch.randn(3, 2, 3, dtype=torch.double, requires_grad=True),
            torch.randn(2, 2, dtype=torch.double, requires_grad=True),
            torch.randn(2, 2, dtype=torch.double, requires_grad=True),
        )

        def fn(xs, h0, c0, cell=cell):
            hs, (_, c_t) = cell(xs, (h0, c0))
            return hs, c_t

        assert torch.autograd.gradcheck(fn, inputs)


def test_language_model_ties_weights_and_runs_both_cells() -> None:
    torch.manual_seed(0)
    model = build_language_model(NASCELL, vocab_size=50, hidden_size=8, num_layers=2, dropout=0.5)
    assert model.decoder.weight is model.embedding.weight
    cell_params = 2 * (8 * 8 * 8 * 2 + 8 * 8)  # two layers: W_x, W_h (8 leaves x 8 x 8) and the bias
    assert count_parameters(model) == 50 * 8 + 50 + cell_params
    tokens = torch.randint(50, (7, 3))
    logits, state = model(tokens)
    assert logits.shape == (7, 3, 50) and len(state) == 2 and state[0][0].shape == (3, 8)
    logits2, _ = model(tokens, state)
    assert logits2.shape == logits.shape
    lstm = build_language_model("lstm", 50, 8)
    assert lstm(tokens)[0].shape == (7, 3, 50)
    assert count_parameters(lstm) == 50 * 8 + 50 + 2 * (4 * 8 * 8 * 2 + 2 * 4 * 8)
    restored = pickle.loads(pickle.dumps(model))
    model.eval(), restored.eval()
    torch.testing.assert_close(restored(tokens)[0], model(tokens)[0])
