"""CIFAR-10 ResNet-20/32/44/56 (He et al. 2016, akamaster/pytorch_resnet_cifar10 style).

Synthetic CIFAR-10: 3x32x32, 50,000 train / 10,000 test images. SGD momentum
0.9, MultiStepLR at epochs 100 and 150, validation batch 128, as the original.
Prints the test (last epoch) and best validation accuracy in percent.
"""

import argparse

from gpupair_search.workloads.common import (
    BatchPool,
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

DEPTHS = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9}  # blocks per stage
TRAIN_SAMPLES, TEST_SAMPLES = 50_000, 10_000
VAL_BATCH = 128


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        # option A shortcut: subsample and zero-pad the channels (no parameters)
        self.pad = planes // 4 if stride != 1 or in_planes != planes else None

    def shortcut(self, x):
        if self.pad is None:
            return x
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, blocks, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(blocks):
                layers.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        out = F.avg_pool2d(out, out.size()[3]).flatten(1)
        return self.linear(out)


def cifar_batch(n, gen):
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)  # normalisation of the original
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (torch.rand(n, 3, 32, 32, generator=gen) - mean) / std, torch.randint(0, 10, (n,), generator=gen)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--arch", choices=sorted(DEPTHS), default="resnet20")
    parser.add_argument("-e", "--epochs", type=positive_int, default=200)
    parser.add_argument("--lr", type=positive_float, default=0.1)
    parser.add_argument("--wd", "--weight-decay", dest="weight_decay", type=non_negative_float, default=1e-4)
    parser.add_argument("--seed", type=non_negative_int, default=1334)
    parser.add_argument("--batch-size", type=positive_int, default=128)
    args, device = start_workload(parser, argv)
    train = BatchPool(cifar_batch, args.batch_size, TRAIN_SAMPLES, device, args.max_steps, seed=args.seed)
    val = BatchPool(cifar_batch, VAL_BATCH, TEST_SAMPLES, device, args.max_steps, seed=args.seed + 1)
    with on_device(device):
        model = ResNet(DEPTHS[args.arch])
    optimizer = torch.optim.SGD(model.parameters(), args.lr, momentum=0.9, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[100, 150])
    log_config(
        workload="pytorch_resnet_cifar10",
        model=args.arch,
        device=device.type,
        batch_size=args.batch_size,
        steps_per_epoch=len(train),
        eval_batches=len(val),
        params=parameter_count(model),
    )

    loop = TrainingLoop(device, train, args.epochs, args.min_train_s)
    best = 0.0
    for epoch in loop:
        for x, y in loop.batches(model):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loop.step_done(loss)
        scheduler.step()

        with torch.no_grad():
            correct = sum((model(x).argmax(1) == y).sum() for x, y in val)
        accuracy = 100.0 * float(correct) / (len(val) * VAL_BATCH)
        best = max(best, accuracy)
        log(f"Epoch {epoch} eval: score {accuracy:.2f}")

    log(f"测试准确率: {accuracy:.2f}")  # test accuracy (%)
    log(f"最佳验证准确率: {best:.2f}")  # best validation accuracy (%)
    finish(device, loop.timer)


if __name__ == "__main__":
    main()
