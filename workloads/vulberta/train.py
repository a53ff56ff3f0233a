"""VulBERTa fine-tuning on synthetic D2A-sized data (ICL-ml4csec/VulBERTa style).

Models (-n):
  mlp  VulBERTa-MLP: a RoBERTa-base-sized encoder (12 layers, hidden 768, 12
       heads, FFN 3072, vocab 50,000, learned positions) built from
       torch.nn.TransformerEncoder, with RoBERTa's classification head (dense
       768 + tanh + out_proj, 2 labels) on the <s> token. AdamW, linear LR decay,
       gradient clipping at 1.0 (Hugging Face Trainer defaults). fp32 here
       (the original notebook trains with fp16 autocast).
  cnn  VulBERTa-CNN: frozen 50,002 x 768 token embedding, Conv1d 768->200 with
       kernels 3/4/5, global max-pool, dropout 0.5, FC 600-256-128-2. Adam.
Sequences are 1024 tokens for both (the tokenizer truncates to 1024; the CNN
notebook pads to fix_length=1024). Default batch: mlp 2, cnn 128 (BATCH_SIZE
of the original CNN notebook). Random token ids and balanced random labels (the
original's class-weighted loss is then a plain cross entropy). -d picks the
dataset; only d2a (its "function" leaderboard task) is modelled.
"""

import argparse
import time

from gpupair_search.workloads.common import (
    BatchPool,
    PerModelBatchSize,
    TrainingLoop,
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

BATCH_SIZE = PerModelBatchSize("model", {"mlp": 2, "cnn": 128})
SEQ_LEN = 1024
VOCAB = 50_000
# D2A leaderboard, function task (d2a_lbv1_function_{train,dev}.csv): about
# 4,600 training and 600 dev functions (approximate sizes).
TRAIN_SAMPLES, EVAL_SAMPLES = 4_643, 596


class RobertaClassifier(nn.Module):  # VulBERTa-MLP (RobertaForSequenceClassification)
    def __init__(
        self, vocab=VOCAB, max_len=SEQ_LEN, hidden=768, layers=12, heads=12, ffn=3072, dropout=0.1, num_labels=2
    ):
        super().__init__()
        self.tokens = nn.Embedding(vocab, hidden, padding_idx=1)
        self.positions = nn.Embedding(max_len + 2, hidden)  # RoBERTa offsets positions by 2
        self.norm = nn.LayerNorm(hidden, eps=1e-5)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            hidden, heads, ffn, dropout, activation="gelu", layer_norm_eps=1e-5, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_labels),
        )
        for m in self.modules():  # RoBERTa's initialisation
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        for layer in self.encoder.layers:  # attention projections are not nn.Linear modules
            nn.init.normal_(layer.self_attn.in_proj_weight, std=0.02)
            nn.init.zeros_(layer.self_attn.in_proj_bias)

    def forward(self, ids):
        positions = torch.arange(2, ids.shape[1] + 2, device=ids.device)
        x = self.dropout(self.norm(self.tokens(ids) + self.positions(positions)))
        return self.head(self.encoder(x)[:, 0])  # <s> token


class VulBertaCNN(nn.Module):  # myCNN of the VulBERTa-CNN notebook
    def __init__(self, vocab=VOCAB + 2, dim=768):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=1)
        self.embed.weight.requires_grad_(False)  # pretrained and frozen in the original
        self.convs = nn.ModuleList(nn.Conv1d(dim, 200, kernel_size=k) for k in (3, 4, 5))
        self.dropout = nn.Dropout(0.5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(600, 256), nn.Linear(256, 128), nn.Linear(128, 2)

    def forward(self, ids):
        x = self.embed(ids).permute(0, 2, 1)
        x = torch.cat([F.relu(conv(x)).amax(dim=2) for conv in self.convs], dim=1)
        x = F.relu(self.fc1(self.dropout(x)))
        return self.fc3(F.relu(self.fc2(x)))


def token_batch(n, gen):
    ids = torch.randint(5, VOCAB, (n, SEQ_LEN), generator=gen)
    ids[:, 0], ids[:, -1] = 0, 2  # <s> ... </s>
    return ids, torch.randint(0, 2, (n,), generator=gen)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--model", choices=sorted(BATCH_SIZE.defaults), default="mlp")
    parser.add_argument("-d", "--dataset", choices=["d2a"], default="d2a")
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--learning_rate", type=positive_float, default=3e-5)
    parser.add_argument("--seed", type=non_negative_int, default=42)
    parser.add_argument("--weight_decay", type=non_negative_float, default=0.0)
    args, device = start_workload(parser, argv, BATCH_SIZE)
    train = BatchPool(token_batch, args.batch_size, TRAIN_SAMPLES, device, args.max_steps, seed=args.seed)
    val = BatchPool(token_batch, args.batch_size, EVAL_SAMPLES, device, args.max_steps, seed=args.seed + 1)
    if args.model == "mlp":
        with on_device(device):
            model = RobertaClassifier()
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
        total = args.epochs * len(train)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / total))
    else:
        with on_device(device):
            model = VulBertaCNN()
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(trainable, lr=args.learning_rate, weight_decay=args.weight_decay)
        scheduler = None
    log_config(
        workload="VulBERTa",
        model=args.model,
        device=device.type,
        batch_size=args.batch_size,
        seq_len=SEQ_LEN,
        steps_per_epoch=len(train),
        eval_batches=len(val),
        params=parameter_count(model),
    )

    loop = TrainingLoop(device, train, args.epochs, args.min_train_s)
    for epoch in loop:
        loss_sum = torch.zeros((), device=device)
        for ids, labels in loop.batches(model):
            loss = F.cross_entropy(model(ids), labels)
            optimizer.zero_grad()
            loss.backward()
            if scheduler is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            loss_sum += loss.detach()
            loop.step_done(loss)
        train_loss = float(loss_sum) / len(train)

        start = time.perf_counter()
        with torch.no_grad():
            eval_loss = sum(F.cross_entropy(model(ids), labels, reduction="sum") for ids, labels in val)
            eval_loss = float(eval_loss) / (len(val) * args.batch_size)  # float() waits for the device
        eval_seconds = time.perf_counter() - start
        log(f"Epoch {epoch} eval: score {eval_loss:.4f}")

    log(f"eval_loss: {eval_loss:.4f}")
    log(f"Final training loss: {train_loss:.4f}")  # mean over the last epoch
    log(f"train_samples_per_second: {loop.timer.samples_per_second:.3f}")
    log(f"eval_samples_per_second: {len(val) * args.batch_size / eval_seconds:.3f}")
    finish(device, loop.timer)


if __name__ == "__main__":
    main()
