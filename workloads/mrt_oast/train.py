"""MRT-OAST-like code clone detection on synthetic code-token pairs.

A transformer encoder, shared by the two code fragments of a pair (siamese),
reads each fragment's token sequence; the two mean-pooled encodings are
combined as [u, v, |u - v|, u * v] and classified clone / not clone.

Sizes are a plausible stand-in for the original (not looked up): token
vocabulary 5,000 (AST node types and identifiers), 256 tokens per fragment,
d_model 256, 8 heads, 4 layers, FFN 1024, learned positions; 50,000 training
pairs and 10,000 test pairs per epoch; default batch 64 pairs. Adam with
weight decay, as --lr / --weight-decay / --dropout of the seed's repository.
Prints Accuracy, Precision, Recall and F1 score of the positive (clone) class.
"""

import argparse

from gpupair_search.workloads.common import (
    BatchPool,
    TrainingLoop,
    dropout_rate,
    finish,
    log,
    log_config,
    non_negative_float,
    non_negative_int,
    on_device,
    parameter_count,
    positive_float,
    positive_int,
    start_workload,
)

# common first: the workload's clock starts at its import, so startup_s includes the imports below
# isort: split
import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB, SEQ_LEN, D_MODEL, HEADS, LAYERS, FFN = 5_000, 256, 256, 8, 4, 1024
TRAIN_PAIRS, TEST_PAIRS = 50_000, 10_000


class CloneDetector(nn.Module):
    def __init__(self, dropout):
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, D_MODEL, padding_idx=0)
        self.positions = nn.Embedding(SEQ_LEN, D_MODEL)
        layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, FFN, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
        self.classifier = nn.Sequential(
            nn.Linear(4 * D_MODEL, D_MODEL), nn.ReLU(), nn.Dropout(dropout), nn.Linear(D_MODEL, 2)
        )

    def encode(self, ids):
        positions = torch.arange(ids.shape[1], device=ids.device)
        return self.encoder(self.tokens(ids) + self.positions(positions)).mean(dim=1)

    def forward(self, a, b):
        u, v = self.encode(a), self.encode(b)
        return self.classifier(torch.cat([u, v, (u - v).abs(), u * v], dim=1))


def pair_batch(n, gen):  # fragment a, fragment b, 1 if clone else 0
    return (
        torch.randint(1, VOCAB, (n, SEQ_LEN), generator=gen),
        torch.randint(1, VOCAB, (n, SEQ_LEN), generator=gen),
        torch.randint(0, 2, (n,), generator=gen),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--lr", type=positive_float, default=1e-4)
    parser.add_argument("--seed", type=non_negative_int, default=1334)
    parser.add_argument("--dropout", type=dropout_rate, default=0.2)
    parser.add_argument("--weight-decay", type=non_negative_float, default=0.0)
    parser.add_argument("--batch-size", type=positive_int, default=64)
    args, device = start_workload(parser, argv)
    train = BatchPool(pair_batch, args.batch_size, TRAIN_PAIRS, device, args.max_steps, seed=args.seed)
    test = BatchPool(pair_batch, args.batch_size, TEST_PAIRS, device, args.max_steps, seed=args.seed + 1)
    with on_device(device):
        model = CloneDetector(args.dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    log_config(
        workload="MRT-OAST",
        model="default",
        device=device.type,
        batch_size=args.batch_size,
        seq_len=SEQ_LEN,
        steps_per_epoch=len(train),
        eval_batches=len(test),
        params=parameter_count(model),
    )

    loop = TrainingLoop(device, train, args.epochs, args.min_train_s)
    for epoch in loop:
        for a, b, y in loop.batches(model):
            loss = F.cross_entropy(model(a, b), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loop.step_done(loss)

        counts = torch.zeros(4, device=device)  # tp, fp, fn, tn
        with torch.no_grad():
            for a, b, y in test:
                pred = model(a, b).argmax(1)
                counts += torch.stack(
                    [(pred == 1) & (y == 1), (pred == 1) & (y == 0), (pred == 0) & (y == 1), (pred == 0) & (y == 0)]
                ).sum(1)
        tp, fp, fn, tn = counts.tolist()
        accuracy = (tp + tn) / counts.sum().item()
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        log(f"Epoch {epoch} eval: score {f1:.4f}")

    for name, value in (("Accuracy", accuracy), ("Precision", precision), ("Recall", recall), ("F1 score", f1)):
        log(f"{name}: {value:.4f}")
    finish(device, loop.timer)


if __name__ == "__main__":
    main()
