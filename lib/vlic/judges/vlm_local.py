"""A VLM judge running locally with transformers: ``AutoModelForImageTextToText`` + ``AutoProcessor``.

``model`` is a hub id (read from the local hub cache only: nothing is ever downloaded) or a folder
written by ``save_pretrained``. The processor's chat template renders :func:`vlic.judges.prompt.processor_messages`
(the same wording as the HTTP judge). Queries are grouped by seed and generated in left-padded batches; each batch
is seeded with ``torch.manual_seed(seed)`` before sampling, so a query's answer depends on its seed and on which
queries shared its batch — the verdict cache is what makes reruns exact.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from vlic.judges.base import JudgeBase, JudgeError, JudgeUnavailable, OnVerdict, Query, Verdict
from vlic.judges.prompt import parse_rating, processor_messages, prompt_version, rationale, upscaled


class TransformersJudge(JudgeBase):
    deterministic = False
    antisymmetric = False

    def __init__(
        self,
        model: str,
        *,
        name: str = "vlm",
        batch_size: int = 4,
        max_new_tokens: int = 512,
        temperature: float = 1.0,
        device: str = "cpu",
        dtype: str = "auto",
        min_side: int = 0,
        reasoning: bool = True,
    ):
        if not model:
            raise JudgeError("the local VLM judge needs a model (hub id or folder; judges.vlm_model / --model)")
        self.model_id, self.name = model, name
        self.batch_size, self.max_new_tokens = max(1, int(batch_size)), int(max_new_tokens)
        self.temperature, self.device, self.dtype, self.min_side = float(temperature), device, dtype, int(min_side)
        self.reasoning = bool(reasoning)   # False: the direct prompt (rating line only)
        self._model = None
        self._processor = None
        self.calls = 0  # generate() calls

    def identity(self) -> dict[str, Any]:
        return {
            "backend": "transformers", "model": self.model_id, "prompt": prompt_version(self.reasoning),
            "temperature": self.temperature, "max_new_tokens": self.max_new_tokens, "min_side": self.min_side,
            "batch_size": self.batch_size,
        }

    def load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModelForImageTextToText, AutoProcessor

        try:
            # local_files_only: a hub id must already be in the local cache — the study never downloads weights
            self._processor = AutoProcessor.from_pretrained(self.model_id, local_files_only=True)
            self._model = AutoModelForImageTextToText.from_pretrained(
                self.model_id, dtype=self.dtype, local_files_only=True
            ).to(self.device).eval()
        except (OSError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise JudgeUnavailable(f"cannot load local VLM '{self.model_id}' ({first}); weights are never downloaded at run time") from None
        tok = getattr(self._processor, "tokenizer", None)
        if tok is not None:
            tok.padding_side = "left"  # decoder-only batched generation

    def judge_many(self, queries: Sequence[Query], on_verdict: OnVerdict | None = None) -> list[Verdict]:
        import torch

        if not queries:
            return []
        self.load()
        proc, model = self._processor, self._model
        prompt = proc.apply_chat_template(processor_messages(self.reasoning), add_generation_prompt=True, tokenize=False)
        out: list[Verdict | None] = [None] * len(queries)
        order = sorted(range(len(queries)), key=lambda i: queries[i].seed)
        batches, cur = [], []
        for i in order:
            if cur and (len(cur) == self.batch_size or queries[cur[0]].seed != queries[i].seed):
                batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            batches.append(cur)
        tok = getattr(proc, "tokenizer", proc)
        for batch in batches:
            images = [[upscaled(x, self.min_side) for x in (queries[i].ref, queries[i].a, queries[i].b)] for i in batch]
            enc = proc(text=[prompt] * len(batch), images=images, padding=True, return_tensors="pt").to(self.device)
            torch.manual_seed(int(queries[batch[0]].seed))
            t0 = time.perf_counter()
            with torch.inference_mode():
                gen = model.generate(
                    **enc, max_new_tokens=self.max_new_tokens, do_sample=self.temperature > 0,
                    temperature=self.temperature if self.temperature > 0 else None, pad_token_id=tok.pad_token_id,
                )
            self.calls += 1
            each = (time.perf_counter() - t0) / len(batch)
            new = gen[:, enc["input_ids"].shape[1] :]
            texts = tok.batch_decode(new, skip_special_tokens=True)
            for k, i in enumerate(batch):
                n_out = int((new[k] != tok.pad_token_id).sum()) if tok.pad_token_id is not None else int(new.shape[1])
                common = dict(text=texts[k], rationale=rationale(texts[k]), latency_s=each,
                              tokens_in=int(enc["attention_mask"][k].sum()), tokens_out=n_out)
                r = parse_rating(texts[k])
                v = Verdict(rating=r, **common) if r is not None else Verdict.failed(
                    "no 'RATING: r' with |r| ≤ 5 in the answer" if texts[k].strip() else "empty answer", "parse", **common)
                out[i] = v
                if on_verdict:
                    on_verdict(i, v)
        return [v for v in out if v is not None]
