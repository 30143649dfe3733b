"""ONNX Runtime encoder: the packaged model exported locally, optionally with dynamic int8 quantisation.

Why not sentence-transformers' own ONNX backend: it needs `optimum`, which pins an older transformers.
Exporting the transformer with torch.onnx and quantising it with onnxruntime needs only `onnx` and
`onnxruntime`, runs offline, and is cached, so the export is paid once per machine. Per-channel int8
weights keep cosine similarity to the float model at about 0.99 and embed roughly 1.5-2x faster on CPU
(see docs/benchmarks.md for the measured retrieval cost).

Two export details are worth 1.15-1.2x on a 2-core AVX2 CPU (766 news passages of 128 word pieces, the
two exports side by side: 48 -> 58 passages/s at batch 8, 46 -> 53 at batch 32; the vectors agree with the
float model as before, mean cosine 0.992): the eager
attention (PyTorch's SDPA path exports `Where`/`IsNaN` mask nodes that took 12 % of the time), and
onnxruntime's pre-processing (graph optimisation before the weights are quantised). `EXPORT_VERSION`
names the file, so a machine with an older export makes the new one once.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import UserError

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
EXPORT_VERSION = 2
log = logging.getLogger(__name__)


def _require() -> Any:
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError as exc:
        raise UserError(
            "The ONNX backends need onnx and onnxruntime (articlebot's own dependencies): "
            "pip install onnx onnxruntime, or set index.backend: torch"
        ) from exc
    return onnxruntime


def _pooling(source: Path) -> str:
    cfg = source / "1_Pooling" / "config.json"
    if not cfg.exists():
        return "mean"
    modes = json.loads(cfg.read_text(encoding="utf-8"))
    if modes.get("pooling_mode_mean_tokens"):
        return "mean"
    if modes.get("pooling_mode_cls_token"):
        return "cls"
    raise UserError(f"The ONNX backend supports mean or CLS pooling only; {source} uses another.")


def _max_seq_length(source: Path) -> int:
    cfg = source / "sentence_bert_config.json"
    if cfg.exists():
        return int(json.loads(cfg.read_text(encoding="utf-8")).get("max_seq_length", 256))
    return 256


def export(source: Path, target: Path, *, quantize: bool) -> None:
    """Write `target` (an .onnx file) atomically from the transformer at `source`."""
    _require()
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from transformers import AutoModel, AutoTokenizer

    try:  # eager attention exports plain MatMul/Softmax, without SDPA's NaN-guarding mask nodes
        model = AutoModel.from_pretrained(str(source), local_files_only=True, attn_implementation="eager")
    except (TypeError, ValueError):  # a model class without the choice
        model = AutoModel.from_pretrained(str(source), local_files_only=True)
    model = model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=True)

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    sample = tokenizer(["an example sentence"], return_tensors="pt")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        fp32 = tmp / "model.onnx"
        axes = {name: {0: "batch", 1: "seq"} for name in (*INPUTS, "last_hidden_state")}
        with torch.no_grad():
            torch.onnx.export(
                Wrapped(),
                tuple(sample[name] for name in INPUTS),
                str(fp32),
                input_names=list(INPUTS),
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        result = fp32
        if quantize:
            # onnxruntime's own advice before quantising: optimise the graph first (the symbolic shape
            # pass cannot follow this export's dynamic axes and is skipped; the ONNX one runs).
            prepared = tmp / "model-pre.onnx"
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
            result = tmp / "model-int8.onnx"
            quantize_dynamic(str(prepared), str(result), weight_type=QuantType.QInt8, per_channel=True)
        os.replace(result, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class OnnxEncoder:
    """The subset of SentenceTransformer the Embedder uses: encode, tokenizer, max_seq_length, dimension."""

    def __init__(self, source: Path, onnx_file: Path, threads: int | None = None):
        ort = _require()
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=True)
        self.max_seq_length = _max_seq_length(source)
        self.pooling = _pooling(source)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        self.session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        # onnxruntime's memory arena grows to the largest batch and keeps it: after an ingest or a reindex
        # that was ~90-180 MB a bot would hold for good. release_memory() runs a tiny input with the
        # arena shrinking at its end, which frees the unused chunks.
        self._shrink = ort.RunOptions()
        self._shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self._dim = int(self.encode(["x"]).shape[1])

    def get_sentence_embedding_dimension(self) -> int:
        return self._dim

    def release_memory(self) -> None:
        """Give the memory of earlier large batches back (call after a multi-batch job)."""
        self.session.run(None, self._feed(["x"]), self._shrink)

    def token_outputs(self, input_ids: np.ndarray) -> np.ndarray:
        """The last hidden state for unpadded token ids (batch, seq): what the model pools."""
        ones = np.ones_like(input_ids, dtype=np.int64)
        feed = {"input_ids": input_ids.astype(np.int64), "attention_mask": ones, "token_type_ids": 0 * ones}
        return np.asarray(self.session.run(None, feed)[0])

    def _feed(self, batch: list[str]) -> dict[str, np.ndarray]:
        enc = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_seq_length, return_tensors="np")
        feed = {name: enc[name].astype(np.int64) for name in INPUTS if name in enc}
        if "token_type_ids" not in feed:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        return feed

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        show_progress_bar: bool = False,
        convert_to_numpy: bool = True,
        normalize_embeddings: bool = True,
    ) -> np.ndarray:
        # Longest first, as sentence-transformers does, so each batch pads little.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out: list[np.ndarray] = []
        steps = range(0, len(texts), batch_size)
        if show_progress_bar:
            from tqdm import tqdm

            steps = tqdm(steps, desc="Batches", unit="batch")
        for start in steps:
            batch = [texts[i] for i in order[start : start + batch_size]]
            feed = self._feed(batch)
            hidden = self.session.run(None, feed)[0]
            if self.pooling == "cls":
                vecs = hidden[:, 0]
            else:
                mask = feed["attention_mask"][..., None].astype(np.float32)
                vecs = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
            out.append(vecs)
        result = np.zeros((len(texts), out[0].shape[1] if out else 0), dtype=np.float32)
        if out:
            result[order] = np.vstack(out)
        if normalize_embeddings and len(result):
            result /= np.maximum(np.linalg.norm(result, axis=1, keepdims=True), 1e-12)
        return result


def load(source: str, backend: str, cache_dir: Path, name: str) -> OnnxEncoder:
    """The ONNX encoder for `source` (a local model folder), exporting it into `cache_dir` the first time."""
    _require()
    path = Path(source)
    if not path.is_dir():
        raise UserError(f"The ONNX backends need a local model folder; {source!r} is not one.")
    from index.embedder import cache_slug

    slug = cache_slug(name)
    quantize = backend == "onnx-int8"
    stem = "model-int8" if quantize else "model"
    onnx_file = cache_dir / "onnx" / slug / f"{stem}-v{EXPORT_VERSION}.onnx"
    if not onnx_file.exists():
        # A one-off pause of a minute or so: say why, so the first start does not look hung.
        log.warning("Exporting the embedding model %r to ONNX (%s), once, into %s", name, backend, onnx_file)
        try:
            export(path, onnx_file, quantize=quantize)
        except UserError:
            raise
        except Exception as exc:
            raise UserError(f"Could not export {name!r} to ONNX: {type(exc).__name__}: {exc}") from exc
    return OnnxEncoder(path, onnx_file)
