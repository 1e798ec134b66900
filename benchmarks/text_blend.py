"""Diagnostic (not a feature): a trained model's score + lam_g * cos(text of the user's last item(s),
text of item), lam per user group chosen on validation. Usage: python benchmarks/text_blend.py RUN_DIR SEED [RECENT]
(RUN_DIR: a finished train-seq run folder with config.yaml, embed/ and seq/)"""

import sys

import numpy as np
import torch

from esrgraph.api import build_recommender
from esrgraph.config import load_config
from esrgraph.data.sequences import SequenceData
from esrgraph.data.store import load_dataset
from esrgraph.runs import Run
from esrgraph.seq.backbones import left_padded
from esrgraph.seq.build import build_evaluator

run_dir, seed = sys.argv[1], int(sys.argv[2])
recent = int(sys.argv[3]) if len(sys.argv) > 3 else 1
cfg = load_config(f"{run_dir}/config.yaml", [])
run = Run(cfg)
model = build_recommender(cfg, run, seed=seed)
state = torch.load(f"{run_dir}/seq/model-seed{seed}.pt", weights_only=True)
model.load_state_dict(state.get("model", state) if isinstance(state, dict) and "model" in state else state)
model.eval()
data = SequenceData(load_dataset(run.stage_dir("dataset")), cfg.seq.max_length, left_padded(cfg.seq))
text = torch.from_numpy(np.load(f"{run_dir}/embed/item_llm.npy")).float()
text = torch.nn.functional.normalize(text, dim=-1)  # row 0 stays 0
tail = data.tail_users.bool()


class Blend:
    def __init__(self, lam_tail, lam_head):
        self.appended_tokens = model.appended_tokens
        self.lam = (lam_tail, lam_head)

    def user_vectors(self, items, lengths, users=None):
        v = model.user_vectors(items, lengths, users)
        # mean text of the last `recent` real items (histories are padded with 0)
        real = items > 0
        if left_padded(cfg.seq):
            pos = torch.arange(items.shape[1]).expand_as(items)
            keep = real & (pos >= items.shape[1] - recent)
        else:
            pos = torch.arange(items.shape[1]).expand_as(items)
            keep = real & (pos >= (lengths.unsqueeze(1) - recent)) & (pos < lengths.unsqueeze(1))
        t = (text[items] * keep.unsqueeze(-1)).sum(1)
        t = torch.nn.functional.normalize(t, dim=-1)
        lam = torch.where(tail[users], self.lam[0], self.lam[1]).unsqueeze(1)
        return torch.cat([v, lam * t], dim=1)

    def item_tables(self):
        return torch.cat([model.item_tables(), text[: model.item_tables().shape[0]]], dim=1)

    def score_all(self, users, tables=None):
        tables = tables if tables is not None else self.item_tables()
        d = model.item_tables().shape[1]
        s = model.score_all(users[:, :d], tables[:, :d])
        return s + users[:, d:] @ tables[:, d:].T

    def score_items(self, users, items):
        d = model.item_tables().shape[1]
        return model.score_items(users[:, :d], items) + (users[:, d:].unsqueeze(1) * text[items]).sum(-1)


ev = build_evaluator(cfg, data, "cpu")
grid = [0.0, 0.5, 1.0, 2.0, 3.0, 5.0]
res = {}
for lam in grid:
    out = ev.evaluate(Blend(lam, lam), "valid", ["full"])["full"]
    res[lam] = {g: round(out[g]["NDCG@10"], 5) for g in out}
    print("valid lam", lam, res[lam], flush=True)
best_t = max(grid, key=lambda x: res[x]["tail_users"])
best_h = max(grid, key=lambda x: res[x]["head_users"])
print("chosen", best_t, best_h)
for lt, lh in [(0.0, 0.0), (best_t, best_h)]:
    out = ev.evaluate(Blend(lt, lh), "test")
    print("test", lt, lh, {p: {g: round(out[p][g]["NDCG@10"], 4) for g in out[p]} for p in out}, flush=True)
