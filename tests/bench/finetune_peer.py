"""Peer anchor for the fine-tuning benchmark: trains the same llama configuration with PyTorch on the CPU.

Same shapes as the CkLlm run (width, blocks, heads, KV heads, feed-forward, vocabulary), same threads, sequence
length and batch; LoRA (rank/alpha, every projection and the output) or Full, AdamW. Prints one JSON line with
the training tokens per second over the timed steps (after warm-up steps).
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RmsNorm(nn.Module):
    def __init__(self, width, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class LoraLinear(nn.Module):
    """Frozen base projection plus (alpha / rank) * B(A x), as llama.cpp applies an adapter."""

    def __init__(self, base, rank, alpha):
        super().__init__()
        self.base = base
        self.a = nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))
        self.b = nn.Parameter(torch.zeros(base.out_features, rank))
        self.scale = alpha / rank

    def forward(self, x):
        return self.base(x) + (x @ self.a.t() @ self.b.t()) * self.scale


def rotate(x, positions, base=10000.0):
    """Llama RoPE (mode 0: adjacent pairs) on [batch, heads, tokens, head_dim]."""
    head_dim = x.shape[-1]
    inverse = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = positions[:, None].float() * inverse[None, :]
    cos, sin = angles.cos(), angles.sin()
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, width, heads, kv_heads, feed_forward):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, width // heads
        self.attn_norm, self.ffn_norm = RmsNorm(width), RmsNorm(width)
        self.attn_q = nn.Linear(width, width, bias=False)
        self.attn_k = nn.Linear(width, kv_heads * self.head_dim, bias=False)
        self.attn_v = nn.Linear(width, kv_heads * self.head_dim, bias=False)
        self.attn_output = nn.Linear(width, width, bias=False)
        self.ffn_gate = nn.Linear(width, feed_forward, bias=False)
        self.ffn_up = nn.Linear(width, feed_forward, bias=False)
        self.ffn_down = nn.Linear(feed_forward, width, bias=False)

    def forward(self, x, positions, mask):
        batch, tokens, width = x.shape
        h = self.attn_norm(x)
        q = self.attn_q(h).view(batch, tokens, self.heads, self.head_dim).transpose(1, 2)
        k = self.attn_k(h).view(batch, tokens, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.attn_v(h).view(batch, tokens, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = rotate(q, positions), rotate(k, positions)
        repeat = self.heads // self.kv_heads
        k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim) + mask
        attended = torch.softmax(scores, dim=-1) @ v
        x = x + self.attn_output(attended.transpose(1, 2).reshape(batch, tokens, width))
        h = self.ffn_norm(x)
        return x + self.ffn_down(F.silu(self.ffn_gate(h)) * self.ffn_up(h))


class Llama(nn.Module):
    def __init__(self, width, blocks, heads, kv_heads, feed_forward, vocabulary):
        super().__init__()
        self.token_embd = nn.Embedding(vocabulary, width)
        self.blocks = nn.ModuleList(Block(width, heads, kv_heads, feed_forward) for _ in range(blocks))
        self.output_norm = RmsNorm(width)
        self.output = nn.Linear(width, vocabulary, bias=False)

    def forward(self, tokens):
        length = tokens.shape[1]
        positions = torch.arange(length)
        mask = torch.full((length, length), float("-inf")).triu(1)
        x = self.token_embd(tokens)
        for block in self.blocks:
            x = block(x, positions, mask)
        return self.output(self.output_norm(x))


def main():
    parser = argparse.ArgumentParser()
    for name in ("width", "blocks", "heads", "kv-heads", "feed-forward", "vocabulary", "context", "batch", "threads"):
        parser.add_argument("--" + name, type=int, required=True)
    parser.add_argument("--method", choices=("Lora", "Full"), required=True)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(1)
    torch.set_num_threads(args.threads)
    model = Llama(args.width, args.blocks, args.heads, args.kv_heads, args.feed_forward, args.vocabulary)
    if args.method == "Lora":
        for p in model.parameters():
            p.requires_grad_(False)
        for block in model.blocks:
            for name in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
                setattr(block, name, LoraLinear(getattr(block, name), args.rank, args.alpha))
        model.output = LoraLinear(model.output, args.rank, args.alpha)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3, weight_decay=0.0)
    data = torch.randint(3, args.vocabulary, (args.steps + args.warmup, args.batch, args.context + 1))
    elapsed = 0.0
    for step in range(args.steps + args.warmup):
        started = time.perf_counter()
        window = data[step]
        logits = model(window[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, args.vocabulary), window[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= args.warmup:
            elapsed += time.perf_counter() - started
    tokens = args.steps * args.batch * args.context
    print(json.dumps({"method": args.method, "tokens_per_second": tokens / elapsed, "trainable": sum(p.numel() for p in trainable),
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
