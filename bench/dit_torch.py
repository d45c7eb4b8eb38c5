"""The PyTorch peer of musicdiff's DiT for bench/bench_train.py (imported only when torch is
installed). It mirrors crates/model/src/{dit,cond,position}.rs: adaLN-zero DiT blocks with
self-attention (RoPE + sinusoidal absolute positions), cross-attention to
[START, text, genre, artist, start, total], exact-erf GELU MLP, pooled text in adaLN, and the
output head's optional MLP branch (`head_hidden`, output layer zero-initialised).
Parameter names differ from musicdiff's; `parameter_table` gives them in musicdiff's naming so
that bench/dit_params.json can be compared.
"""

import math
import re
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

TIME_FEATURES = 256
TIMING_FEATURES = 17


def sinusoid(values, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = values[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def rope_tables(n, dh, theta):
    half = dh // 2
    i = torch.arange(dh) % half
    inv = theta ** (-2.0 * i / dh)
    ang = torch.arange(n)[:, None] * inv[None]
    return torch.cos(ang), torch.sin(ang)


def apply_rope(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Block(nn.Module):
    def __init__(self, d, heads, hidden):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.qkv = nn.Linear(d, 3 * d)
        self.attn_out = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.cross_out = nn.Linear(d, d)
        self.norm3 = nn.LayerNorm(d, eps=1e-6)
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, d)
        self.ada = nn.Linear(d, 6 * d)
        for lin in (self.ada, self.cross_out):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def heads_of(self, t):
        b, l, d = t.shape
        return t.view(b, l, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x, c, memory, keep_mask, rope):
        b, n, d = x.shape
        s1, sc1, g1, s2, sc2, g2 = self.ada(F.silu(c)).view(b, 6, 1, d).unbind(1)
        h = self.norm1(x) * (1 + sc1) + s1
        q, k, v = self.qkv(h).split(d, dim=2)
        q, k, v = self.heads_of(q), self.heads_of(k), self.heads_of(v)
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        a = F.scaled_dot_product_attention(q, k, v)
        x = x + g1 * self.attn_out(a.transpose(1, 2).reshape(b, n, d))
        q = self.heads_of(self.q(self.norm2(x)))
        k, v = self.kv(memory).split(d, dim=2)
        a = F.scaled_dot_product_attention(q, self.heads_of(k), self.heads_of(v), attn_mask=keep_mask)
        x = x + self.cross_out(a.transpose(1, 2).reshape(b, n, d))
        h = self.norm3(x) * (1 + sc2) + s2
        return x + g2 * self.fc2(F.gelu(self.fc1(h)))


class Mlp(nn.Module):
    """fc2(gelu(fc1(x))), the output layer starting at zero."""

    def __init__(self, d, hidden, out):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, out)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Dit(nn.Module):
    def __init__(self, m):
        super().__init__()
        d, pd, t = m["d_model"], m["patch_frames"] * m["n_mels"], m["text_dim"]
        self.m = m
        self.patch_in = nn.Linear(2 * pd + 1, d)
        self.time1 = nn.Linear(TIME_FEATURES, d)
        self.time2 = nn.Linear(d, d)
        p = lambda rows: nn.Parameter(torch.randn(rows, d) * 0.02)
        self.start_token, self.null_text, self.null_genre = p(1), p(1), p(1)
        self.null_artist, self.null_timing, self.null_pooled = p(1), p(2), p(1)
        self.text_proj = nn.Linear(t, d)
        self.genre_proj = nn.Linear(t, d)
        self.artist_proj = nn.Linear(t, d)
        self.start_proj = nn.Linear(TIMING_FEATURES, d)
        self.total_proj = nn.Linear(TIMING_FEATURES, d)
        self.pooled_proj = nn.Linear(t, d)
        hidden = round(d * m["mlp_ratio"])
        self.blocks = nn.ModuleList([Block(d, m["heads"], hidden) for _ in range(m["depth"])])
        self.final_norm = nn.LayerNorm(d, eps=1e-6)
        self.final_ada = nn.Linear(d, 2 * d)
        self.proj = nn.Linear(d, pd)
        for lin in (self.final_ada, self.proj):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        hh = m.get("head_hidden")
        self.branch = Mlp(d, hh, pd) if hh else None

    @staticmethod
    def mix(x, null, keep):
        keep = keep[:, None, None]
        return x * keep + null[None] * (1 - keep)

    def forward(self, noisy, known, mask, t, cond):
        b, n, _ = noisy.shape
        d = self.m["d_model"]
        x = self.patch_in(torch.cat([noisy, known, mask], dim=2))
        x = x + sinusoid(torch.arange(n, dtype=torch.float32), d)[None]
        keep = cond["keep"]
        c = self.time2(F.silu(self.time1(sinusoid(t * 1000.0, TIME_FEATURES))))
        c = c + self.mix(self.pooled_proj(cond["sentence"])[:, None], self.null_pooled, keep[:, 0])[:, 0]
        parts = [
            self.start_token[None].expand(b, 1, d),
            self.mix(self.text_proj(cond["text"]), self.null_text, keep[:, 0]),
            self.mix(self.genre_proj(cond["genre"])[:, None], self.null_genre, keep[:, 1]),
            self.mix(self.artist_proj(cond["artist"])[:, None], self.null_artist, keep[:, 2]),
            self.mix(
                torch.stack([self.start_proj(cond["start"]), self.total_proj(cond["total"])], 1),
                self.null_timing,
                keep[:, 3],
            ),
        ]
        memory = torch.cat(parts, dim=1)
        ones = torch.ones(b, 1, dtype=torch.bool)
        valid = torch.cat([ones, cond["text_valid"], ones.expand(b, 4)], dim=1)
        keep_mask = valid[:, None, None, :]
        rope = rope_tables(n, d // self.m["heads"], self.m["rope_theta"])
        for blk in self.blocks:
            x = blk(x, c, memory, keep_mask, rope)
        shift, scale = self.final_ada(F.silu(c)).view(b, 2, 1, d).unbind(1)
        h = self.final_norm(x) * (1 + scale) + shift
        out = self.proj(h)
        return out if self.branch is None else out + self.branch(h)


def synthetic(m, b):
    n, pd, t = m["frames"] // m["patch_frames"], m["patch_frames"] * m["n_mels"], m["text_dim"]
    mask = (torch.arange(n) < n // 2).float()[None, :, None].expand(b, n, 1).contiguous()
    batch = dict(
        noisy=torch.randn(b, n, pd), known=torch.randn(b, n, pd), mask=mask,
        t=torch.rand(b), target=torch.randn(b, n, pd), generate=1 - mask[..., 0],
    )
    cond = dict(
        text=torch.randn(b, 20, t), text_valid=torch.ones(b, 20, dtype=torch.bool),
        sentence=torch.randn(b, t), genre=torch.randn(b, t), artist=torch.randn(b, t),
        start=torch.rand(b, TIMING_FEATURES), total=torch.rand(b, TIMING_FEATURES),
        keep=torch.ones(b, 4),
    )
    return batch, cond


# musicdiff's names for this module's parameters: (pattern, replacement), applied in order.
RENAMES = [
    (r"^time([12])\.", r"time.fc\1."),
    (r"^(start_token|null_\w+|(text|genre|artist|start|total|pooled)_proj)\b", r"cond.\1"),
    (r"^(blocks\.\d+)\.qkv\.", r"\1.attn.qkv."),
    (r"^(blocks\.\d+)\.attn_out\.", r"\1.attn.out."),
    (r"^(blocks\.\d+)\.(q|kv)\.", r"\1.cross.\2."),
    (r"^(blocks\.\d+)\.cross_out\.", r"\1.cross.out."),
    (r"^(blocks\.\d+)\.(fc[12])\.", r"\1.mlp.\2."),
    (r"^final_norm\.", "last.norm."),
    (r"^final_ada\.", "last.ada."),
    (r"^proj\.", "last.proj."),
    (r"^branch\.", "last.branch."),
]


def parameter_table(model):
    """{musicdiff name: shape} of `model`'s parameters: burn stores a linear layer's weight as
    [in, out] (PyTorch: [out, in]) and a layer norm's as gamma and beta."""
    kinds = {}
    for prefix, mod in model.named_modules():
        dot = prefix + "." if prefix else ""
        if isinstance(mod, nn.Linear):
            kinds[dot + "weight"] = "linear"
        elif isinstance(mod, nn.LayerNorm):
            kinds[dot + "weight"], kinds[dot + "bias"] = "gamma", "beta"
    table = {}
    for name, p in model.named_parameters():
        shape = list(p.shape)
        kind = kinds.get(name)
        if kind == "linear":
            shape = shape[::-1]
        elif kind in ("gamma", "beta"):
            name = name.rsplit(".", 1)[0] + "." + kind
        for pattern, repl in RENAMES:
            name = re.sub(pattern, repl, name)
        table[name] = shape
    return table


def bench_torch(cfg, steps, warmup):
    m, o = cfg["model"], cfg["optim"]
    torch.manual_seed(0)
    model = Dit(m)
    ema = Dit(m)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=o["lr"], betas=(o["beta1"], o["beta2"]),
                            eps=o["eps"], weight_decay=o["weight_decay"])
    batch, cond = synthetic(m, o["batch_size"])
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        pred = model(batch["noisy"], batch["known"], batch["mask"], batch["t"], cond)
        se = ((pred - batch["target"]) ** 2).sum(2)
        g = batch["generate"]
        loss = ((se * g).sum(1) / (g.sum(1) * pred.shape[2])).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), o["grad_clip"])
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters()):
                e.mul_(0.999).add_(p, alpha=0.001)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    params = sum(p.numel() for p in model.parameters())
    batch, cond = synthetic(m, 2)
    fwd = []
    with torch.inference_mode():
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            ema(batch["noisy"], batch["known"], batch["mask"], batch["t"], cond)
            if i >= warmup:
                fwd.append(time.perf_counter() - t0)
    return params, times, fwd
