"""CoOp-style learnable prompts and the frozen CLIP text encoder that reads them.

Context Optimization (Zhou et al., "Learning to Prompt for Vision-Language Models",
IJCV 2022) replaces hand-written prompt words with ``n_ctx`` learnable vectors in the
token-embedding space. DFER-CLIP (Zhao & Patras, BMVC 2023, Sec. 3.2) uses the same
learner with class-specific contexts and LLM-written class descriptions. Each class has
one prompt::

    [SOS] ctx_1 ... ctx_M <class text tokens> [EOS] <padding>     (position "end")

It is built by tokenising ``"X X ... X " + text`` and replacing the M "X" embeddings by the
context vectors; the SOS embedding (``token_prefix``) and everything after the context
(``token_suffix``) are frozen buffers computed once from the frozen token embedding.
Parameter and buffer names (``ctx``, ``token_prefix``, ``token_suffix``) match the
authors' checkpoints.

The class texts are used verbatim: CoOp's ``"<classname>."`` form is the caller's job.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from open_clip.transformer import text_global_pool
from torch import nn

__all__ = ["PromptLearner", "TextEncoder", "CLASS_TOKEN_POSITIONS"]

CLASS_TOKEN_POSITIONS = ("end", "middle", "front")


class TextEncoder(nn.Module):
    """open_clip's CLIP text tower, fed token *embeddings* instead of token ids.

    Holds the same parameter objects as the CLIP model it is built from (no copies):
    ``token_embedding``, ``positional_embedding``, ``transformer``, ``ln_final``,
    ``text_projection``, plus the causal ``attn_mask`` (non-persistent buffer).

    Args:
        clip_model: an open_clip ``CLIP`` (not ``CustomTextCLIP``).
        freeze: set ``requires_grad=False`` on every parameter of the text tower (both
            DFER-CLIP and CoOp keep it frozen).
    """

    def __init__(self, clip_model: nn.Module, freeze: bool = True):
        super().__init__()
        if not hasattr(clip_model, "token_embedding") or not hasattr(clip_model, "transformer"):
            raise TypeError(
                f"{type(clip_model).__name__} has no built-in text tower (open_clip CLIP expected)"
            )
        self.token_embedding = clip_model.token_embedding
        self.positional_embedding = clip_model.positional_embedding
        self.transformer = clip_model.transformer
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.register_buffer("attn_mask", clip_model.attn_mask, persistent=False)
        self.pool_type: str = getattr(clip_model, "text_pool_type", "argmax")
        self.eos_id: int | None = getattr(clip_model, "text_eos_id", None)
        self.context_length: int = clip_model.positional_embedding.shape[0]
        if freeze:
            for p in self.parameters():
                p.requires_grad_(False)

    @property
    def width(self) -> int:
        return self.positional_embedding.shape[-1]

    @property
    def dtype(self) -> torch.dtype:
        return self.transformer.get_cast_dtype()

    def forward(self, prompts: torch.Tensor, tokenized_prompts: torch.Tensor) -> torch.Tensor:
        """Encode prompt embeddings.

        Args:
            prompts: ``[N, L, W]`` token embeddings (L = context length).
            tokenized_prompts: ``[N, L]`` token ids of the same prompts; only used to find
                the pooling position (the EOT token = argmax of the ids for CLIP).

        Returns:
            ``[N, E]`` projected, un-normalised text features.
        """
        cast_dtype = self.dtype
        x = prompts.to(cast_dtype) + self.positional_embedding.to(cast_dtype)  # [N, L, W]
        # open_clip's Transformer takes [N, L, W] whatever its ``batch_first`` says: with
        # sequence-first blocks it transposes internally (CLIP.encode_text relies on this).
        x = self.transformer(x, attn_mask=self.attn_mask)  # [N, L, W]
        x = self.ln_final(x)  # [N, L, W]
        x = text_global_pool(x, tokenized_prompts, self.pool_type, eos_token_id=self.eos_id)  # [N, W]
        if isinstance(self.text_projection, nn.Linear):
            x = self.text_projection(x)
        elif self.text_projection is not None:
            x = x @ self.text_projection  # [N, E]
        return x

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Plain CLIP text encoding of token ids ``[N, L]`` -> ``[N, E]`` (un-normalised)."""
        return self(self.token_embedding(tokens), tokens)


def coop_name_lens(tokenizer: Callable[..., torch.Tensor], class_texts: Sequence[str]) -> list[int]:
    """Token counts of the class names in CoOp's prompts ``"<ctx> <name>."``: a class text's
    final ``"."`` is CoOp's template, not the name, and stays put in the ``middle`` and
    ``front`` positions."""
    return [len(tokenizer.encode(text[:-1] if text.endswith(".") else text)) for text in class_texts]


class PromptLearner(nn.Module):
    """Learnable prompt context, one prompt per class.

    Args:
        clip_model: the open_clip CLIP whose (frozen) token embedding builds the buffers.
        tokenizer: open_clip tokenizer of that model (``tokenizer(texts) -> [N, L]``
            and ``tokenizer.encode(text) -> list[int]`` without SOS/EOS).
        class_texts: one text per class, used verbatim (e.g. DFER-CLIP's descriptors, or
            ``"happiness."``).
        n_ctx: number of context vectors M. ``None`` means 8 (DFER-CLIP's scripts) or,
            with ``ctx_init``, the phrase's token count.
        class_specific: one context per class (``ctx`` ``[C, M, W]``) or a generic one
            shared by all classes (``[M, W]``).
        class_token_position: ``"end"`` (``ctx, text``), ``"middle"`` (``ctx[:M//2], text,
            ctx[M//2:]``) or ``"front"`` (``text, ctx``).
        ctx_init: initialise a generic context from this phrase's token embeddings
            (CoOp's ``"a photo of a"``) instead of N(0, 0.02).
        name_lens: how many leading tokens of each class text the ``middle`` and ``front``
            positions move as the class name; default: all of them (DFER-CLIP's code,
            whose class texts are the whole sentence). CoOp moves the class name only and
            leaves its template's final ``"."`` in place (:func:`coop_name_lens`).
    """

    def __init__(
        self,
        clip_model: nn.Module,
        tokenizer: Callable[..., torch.Tensor],
        class_texts: Sequence[str],
        *,
        n_ctx: int | None = None,
        class_specific: bool = True,
        class_token_position: str = "end",
        ctx_init: str | None = None,
        name_lens: Sequence[int] | None = None,
    ):
        super().__init__()
        class_texts = list(class_texts)
        if not class_texts:
            raise ValueError("class_texts is empty")
        if class_token_position not in CLASS_TOKEN_POSITIONS:
            raise ValueError(
                f"class_token_position must be one of {CLASS_TOKEN_POSITIONS}, got {class_token_position!r}"
            )
        token_embedding: nn.Embedding = clip_model.token_embedding
        context_length = clip_model.positional_embedding.shape[0]
        dtype = token_embedding.weight.dtype
        device = token_embedding.weight.device
        ctx_dim = token_embedding.weight.shape[1]
        n_cls = len(class_texts)

        if ctx_init is not None:
            if class_specific:
                raise ValueError(
                    "ctx_init gives a generic context (as in CoOp); pass class_specific=False"
                )
            ctx_init = ctx_init.replace("_", " ").strip()
            init_len = len(tokenizer.encode(ctx_init))
            if n_ctx is not None and n_ctx != init_len:
                raise ValueError(f"n_ctx={n_ctx} but ctx_init {ctx_init!r} has {init_len} tokens")
            n_ctx = init_len
            prompt_prefix = ctx_init
        else:
            n_ctx = 8 if n_ctx is None else n_ctx
            prompt_prefix = " ".join(["X"] * n_ctx)
        if n_ctx < 1:
            raise ValueError(f"n_ctx must be >= 1, got {n_ctx}")

        text_lens = [len(tokenizer.encode(text)) for text in class_texts]
        for i, text_len in enumerate(text_lens):
            if 1 + n_ctx + text_len + 1 > context_length:
                raise ValueError(
                    f"class text {i} ({class_texts[i]!r}) has {text_len} tokens: with {n_ctx} context "
                    f"vectors, SOS and EOS it exceeds the context length {context_length}"
                )
        name_lens = text_lens if name_lens is None else [int(n) for n in name_lens]
        if len(name_lens) != n_cls or not all(0 < n <= t for n, t in zip(name_lens, text_lens)):
            raise ValueError(f"name_lens {name_lens} must give 1..len(text) tokens for each of the {n_cls} class texts")
        prompts = [prompt_prefix + " " + text for text in class_texts]
        tokenized_prompts = tokenizer(prompts).to(device)  # [C, L]
        if tokenized_prompts.shape[1] != context_length:
            raise ValueError(
                f"tokenizer gives {tokenized_prompts.shape[1]} tokens, the model expects {context_length}"
            )
        with torch.no_grad():
            embedding = token_embedding(tokenized_prompts).to(dtype)  # [C, L, W]

        if ctx_init is not None:
            ctx_vectors = embedding[0, 1 : 1 + n_ctx].clone()  # [M, W]
        else:
            shape = (n_cls, n_ctx, ctx_dim) if class_specific else (n_ctx, ctx_dim)
            ctx_vectors = torch.empty(shape, dtype=dtype, device=device)
            nn.init.normal_(ctx_vectors, std=0.02)
        self.ctx = nn.Parameter(ctx_vectors)  # [C, M, W] or [M, W]

        # Cloned so the two buffers own their storage (safetensors refuses shared tensors).
        self.register_buffer("token_prefix", embedding[:, :1].clone())  # [C, 1, W]: SOS
        self.register_buffer("token_suffix", embedding[:, 1 + n_ctx :].clone())  # [C, L-1-M, W]
        self.register_buffer("tokenized_prompts", tokenized_prompts, persistent=False)  # [C, L]

        self.class_texts = class_texts
        self.n_cls = n_cls
        self.n_ctx = n_ctx
        self.ctx_dim = ctx_dim
        self.name_lens = name_lens
        self.class_specific = class_specific
        self.class_token_position = class_token_position
        self.ctx_init = ctx_init

    def forward(self) -> torch.Tensor:
        """Prompt embeddings ``[C, L, W]`` for all classes."""
        ctx = self.ctx
        if ctx.dim() == 2:
            ctx = ctx.unsqueeze(0).expand(self.n_cls, -1, -1)  # [C, M, W]
        prefix, suffix = self.token_prefix, self.token_suffix

        if self.class_token_position == "end":
            return torch.cat([prefix, ctx, suffix], dim=1)  # [C, L, W]

        half = self.n_ctx // 2
        prompts = []
        for i, name_len in enumerate(self.name_lens):
            class_i = suffix[i : i + 1, :name_len]  # [1, n_i, W]
            rest_i = suffix[i : i + 1, name_len:]  # [1, *, W]: EOS, padding
            if self.class_token_position == "middle":
                parts = [prefix[i : i + 1], ctx[i : i + 1, :half], class_i, ctx[i : i + 1, half:], rest_i]
            else:  # front
                parts = [prefix[i : i + 1], class_i, ctx[i : i + 1], rest_i]
            prompts.append(torch.cat(parts, dim=1))
        return torch.cat(prompts, dim=0)  # [C, L, W]

    def extra_repr(self) -> str:
        return (
            f"n_cls={self.n_cls}, n_ctx={self.n_ctx}, class_specific={self.class_specific}, "
            f"class_token_position={self.class_token_position!r}"
        )

    def options(self) -> dict[str, Any]:
        """Constructor options, for checkpoint sidecars."""
        return {
            "n_ctx": self.n_ctx,
            "class_specific": self.class_specific,
            "class_token_position": self.class_token_position,
            "ctx_init": self.ctx_init,
        }
