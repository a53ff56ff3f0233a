"""Person re-ID on synthetic Market-1501 (layumi/Person_reID_baseline_pytorch style).

Models (-n): densenet121 (torchvision densenet121 + ClassBlock 1024->512, BN,
dropout -> 751), hrnet18 (timm hrnet_w18 pooled 2048-d features + ClassBlock
2048->512 -> 751), pcb (resnet50, layer4 stride 1, 6 horizontal parts, one
ClassBlock 2048->256 -> 751 per part). Random init, nothing is downloaded.
Market-1501 shapes: 3x256x128 (the original resizes PCB inputs to 384x192;
INPUT_SIZE keeps 256x128 for every model), 12,936 training images of 751
ids. SGD momentum 0.9, nesterov, weight decay 5e-4, backbone at 0.1 x lr, as
the original. Default batch: 24 densenet121 / 24 hrnet18 / 32 pcb.

Evaluation at the end of every epoch: features (with horizontal-flip
augmentation, as the original test.py) of 3,368 query and 15,913 gallery
images, extracted with the training batch size, then Rank@1/5/10 and mAP
computed on the CPU, with same-id same-camera gallery images as junk.
"""

import argparse

from gpupair_search.workloads.common import (
    BatchPool,
    PerModelBatchSize,
    TrainingLoop,
    dropout_rate,
    finish,
    log,
    log_config,
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

BATCH_SIZE = PerModelBatchSize("name", {"densenet121": 24, "hrnet18": 24, "pcb": 32})
NUM_CLASSES = 751
INPUT_SIZE = (256, 128)
TRAIN_SAMPLES, QUERY_SAMPLES, GALLERY_SAMPLES = 12_936, 3_368, 15_913
TEST_IDS, CAMERAS = 750, 6
PARTS = 6


class ClassBlock(nn.Module):
    """Linear -> BatchNorm1d -> Dropout (add_block) -> Linear (classifier)."""

    def __init__(self, input_dim, class_num, droprate, linear=512):
        super().__init__()
        self.add_block = nn.Sequential(nn.Linear(input_dim, linear), nn.BatchNorm1d(linear))
        if droprate > 0:
            self.add_block.append(nn.Dropout(p=droprate))
        self.classifier = nn.Linear(linear, class_num)
        for m in self.add_block.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_out")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.classifier.weight, std=0.001)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x):
        return self.classifier(self.add_block(x))


class GlobalNet(nn.Module):
    """Backbone -> pooled feature -> ClassBlock (ft_net_dense, ft_net_hr)."""

    def __init__(self, name, droprate):
        super().__init__()
        if name == "densenet121":
            import torchvision

            densenet = torchvision.models.densenet121(weights=None)
            densenet.features.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.backbone, dim = nn.Sequential(densenet.features, nn.Flatten(1)), 1024
        else:
            import timm

            # num_classes=0: timm returns the pooled 2048-d features; the
            # 751-way head is the ClassBlock, as in the original ft_net_hr
            self.backbone, dim = timm.create_model("hrnet_w18", pretrained=False, num_classes=0), 2048
        self.classifier = ClassBlock(dim, NUM_CLASSES, droprate)

    def forward(self, x):
        return self.classifier(self.backbone(x))

    def features(self, x):  # test.py removes the last Linear: 512-d embedding
        return self.classifier.add_block(self.backbone(x))

    def normalise(self, f):
        return F.normalize(f, dim=1)


class PCB(nn.Module):
    def __init__(self, droprate):
        import torchvision

        super().__init__()
        resnet = torchvision.models.resnet50(weights=None)
        resnet.layer4[0].downsample[0].stride = (1, 1)  # remove the final downsample
        resnet.layer4[0].conv2.stride = (1, 1)
        self.backbone = nn.Sequential(*list(resnet.children())[:-2])
        self.avgpool = nn.AdaptiveAvgPool2d((PARTS, 1))
        self.dropout = nn.Dropout(p=droprate)
        self.classifier = nn.ModuleList(ClassBlock(2048, NUM_CLASSES, droprate, linear=256) for _ in range(PARTS))

    def forward(self, x):
        x = self.dropout(self.avgpool(self.backbone(x)))  # N x 2048 x 6 x 1
        return [head(x[:, :, i, 0]) for i, head in enumerate(self.classifier)]

    def features(self, x):  # PCB_test: the 6 pooled part features
        return self.avgpool(self.backbone(x)).flatten(2)  # N x 2048 x 6

    def normalise(self, f):
        f = f / (f.norm(p=2, dim=1, keepdim=True) * PARTS**0.5)
        return f.flatten(1)


# ---------------------------------------------------------------- data and evaluation


def _images(n, gen):
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (torch.rand(n, 3, *INPUT_SIZE, generator=gen) - mean) / std


def train_batch(n, gen):
    return _images(n, gen), torch.randint(0, NUM_CLASSES, (n,), generator=gen)


def test_batch(n, gen):  # images, person ids, camera ids
    return (
        _images(n, gen),
        torch.randint(0, TEST_IDS, (n,), generator=gen),
        torch.randint(1, CAMERAS + 1, (n,), generator=gen),
    )


@torch.no_grad()
def extract(model, pool):
    feats, ids, cams = [], [], []
    for x, pid, cam in pool:
        f = model.features(x) + model.features(torch.flip(x, dims=[3]))
        feats.append(model.normalise(f).float().cpu())
        ids.append(pid.cpu())
        cams.append(cam.cpu())
    return torch.cat(feats), torch.cat(ids), torch.cat(cams)


def rank_metrics(query, gallery, chunk=256):
    """Rank@1/5/10 and mAP over the queries that have a valid match (as evaluate_gpu.py)."""
    qf, ql, qc = query
    gf, gl, gc = gallery
    hits = torch.zeros(3)
    ap_sum, valid = 0.0, 0
    for s in range(0, len(qf), chunk):
        order = (qf[s : s + chunk] @ gf.T).argsort(dim=1, descending=True)
        same_id = gl[order] == ql[s : s + chunk, None]
        same_cam = gc[order] == qc[s : s + chunk, None]
        good = same_id & ~same_cam
        rank = (~(same_id & same_cam)).cumsum(1) - 1  # position once junk is removed
        n_good = good.sum(1)
        ok = n_good > 0
        first = torch.where(good, rank, order.shape[1]).min(1).values[ok]
        hits += torch.stack([(first < k).sum() for k in (1, 5, 10)]).float()
        i = (good.cumsum(1) - 1).float()  # index among the good matches
        r = rank.float()
        precision = (i + 1) / (r + 1)
        old_precision = torch.where(r > 0, i / r.clamp(min=1), torch.ones_like(r))
        ap = torch.where(good, (precision + old_precision) / 2, 0.0).sum(1)
        ap_sum += float((ap[ok] / n_good[ok]).sum())
        valid += int(ok.sum())
    cmc = hits / max(valid, 1)
    return float(cmc[0]), float(cmc[1]), float(cmc[2]), ap_sum / max(valid, 1)


# ---------------------------------------------------------------- training


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--name", choices=sorted(BATCH_SIZE.defaults), default="densenet121")
    parser.add_argument("--total_epoch", type=positive_int, default=60)
    parser.add_argument("--lr", type=positive_float, default=0.05)
    parser.add_argument("--seed", type=non_negative_int, default=1334)
    parser.add_argument("--droprate", type=dropout_rate, default=0.5)
    args, device = start_workload(parser, argv, BATCH_SIZE)
    with on_device(device):
        model = PCB(args.droprate) if args.name == "pcb" else GlobalNet(args.name, args.droprate)
    head_ids = {id(p) for p in model.classifier.parameters()}
    optimizer = torch.optim.SGD(
        [
            {"params": [p for p in model.parameters() if id(p) not in head_ids], "lr": 0.1 * args.lr},
            {"params": list(model.classifier.parameters()), "lr": args.lr},
        ],
        weight_decay=5e-4,
        momentum=0.9,
        nesterov=True,
    )
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, args.total_epoch * 2 // 3), gamma=0.1)
    train = BatchPool(train_batch, args.batch_size, TRAIN_SAMPLES, device, args.max_steps, seed=args.seed)
    query = BatchPool(test_batch, args.batch_size, QUERY_SAMPLES, device, args.max_steps, seed=args.seed + 1)
    gallery = BatchPool(test_batch, args.batch_size, GALLERY_SAMPLES, device, args.max_steps, seed=args.seed + 2)
    log_config(
        workload="Person_reID_baseline_pytorch",
        model=args.name,
        device=device.type,
        batch_size=args.batch_size,
        steps_per_epoch=len(train),
        eval_batches=len(query) + len(gallery),
        params=parameter_count(model),
    )

    loop = TrainingLoop(device, train, args.total_epoch, args.min_train_s)
    for epoch in loop:
        for x, y in loop.batches(model):
            out = model(x)
            loss = sum(F.cross_entropy(o, y) for o in out) if isinstance(out, list) else F.cross_entropy(out, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loop.step_done(loss)
        scheduler.step()

        rank1, rank5, rank10, mean_ap = rank_metrics(extract(model, query), extract(model, gallery))
        log(f"Epoch {epoch} eval: score {rank1:.4f}")

    log(f"Rank@1:{rank1:.4f} Rank@5:{rank5:.4f} Rank@10:{rank10:.4f} mAP:{mean_ap:.4f}")
    finish(device, loop.timer)


if __name__ == "__main__":
    main()
