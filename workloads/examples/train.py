"""pytorch/examples MNIST workloads on synthetic MNIST-shaped data.

Models (-n): mnist (CNN of examples/mnist), mnist_rnn (LSTM over image rows,
examples/mnist_rnn), mnist_ff (forward-forward 784-500-500, examples/
mnist_forward_forward, trained here on mini-batches, one local step per layer
per batch), siamese (resnet18 siamese net on image pairs, examples/
siamese_network). Adadelta + StepLR(gamma 0.7) as the originals, except
mnist_ff (one Adam per layer). Evaluation uses the originals' test batch
size of 1000.
"""

import argparse

from gpupair_search.workloads.common import (
    BatchPool,
    TrainingLoop,
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

MODELS = ["mnist", "mnist_rnn", "mnist_ff", "siamese"]
TRAIN_SAMPLES, TEST_SAMPLES = 60_000, 10_000
TEST_BATCH = 1000  # --test-batch-size default of pytorch/examples


# ---------------------------------------------------------------- models


class MnistNet(nn.Module):  # examples/mnist
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


class MnistRNN(nn.Module):  # examples/mnist_rnn
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(input_size=28, hidden_size=64, batch_first=True)
        self.batchnorm = nn.BatchNorm1d(64)
        self.dropout1 = nn.Dropout(0.25)  # Dropout2d in the original (warns on 2-D input)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        out, _ = self.rnn(x.reshape(-1, 28, 28))  # one image row per time step
        x = self.dropout1(self.batchnorm(out[:, -1, :]))
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


class FFLayer(nn.Linear):  # examples/mnist_forward_forward
    def __init__(self, in_features, out_features, lr, threshold=2.0):
        super().__init__(in_features, out_features)
        self.threshold = threshold
        self.opt = torch.optim.Adam(self.parameters(), lr=lr)

    def forward(self, x):
        x_direction = x / (x.norm(2, 1, keepdim=True) + 1e-4)
        return F.relu(torch.mm(x_direction, self.weight.T) + self.bias.unsqueeze(0))

    def local_step(self, x_pos, x_neg):
        g_pos = self.forward(x_pos).pow(2).mean(1)
        g_neg = self.forward(x_neg).pow(2).mean(1)
        loss = torch.log(1 + torch.exp(torch.cat([-g_pos + self.threshold, g_neg - self.threshold]))).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return self.forward(x_pos).detach(), self.forward(x_neg).detach(), loss.detach()


def overlay_y_on_x(x, y):
    """Replace the first 10 pixels with a one-hot label scaled to x.max()."""
    x_ = x.clone()
    x_[:, :10] *= 0.0
    x_[range(x.shape[0]), y] = x.max()
    return x_


class FFNet(nn.Module):
    def __init__(self, lr, dims=(784, 500, 500)):
        super().__init__()
        self.layers = nn.ModuleList(FFLayer(dims[i], dims[i + 1], lr) for i in range(len(dims) - 1))

    def train_batch(self, x, y):
        x = x.flatten(1)
        h_pos = overlay_y_on_x(x, y)
        h_neg = overlay_y_on_x(x, y[torch.randperm(x.shape[0], device=x.device)])
        total = 0.0
        for layer in self.layers:
            h_pos, h_neg, loss = layer.local_step(h_pos, h_neg)
            total = total + loss
        return total

    def predict(self, x):
        x = x.flatten(1)
        goodness_per_label = []
        for label in range(10):
            h = overlay_y_on_x(x, label)
            goodness = 0.0
            for layer in self.layers:
                h = layer(h)
                goodness = goodness + h.pow(2).mean(1)
            goodness_per_label.append(goodness.unsqueeze(1))
        return torch.cat(goodness_per_label, 1).argmax(1)


class SiameseNetwork(nn.Module):  # examples/siamese_network
    def __init__(self):
        import torchvision

        super().__init__()
        resnet = torchvision.models.resnet18(weights=None)
        resnet.conv1 = nn.Conv2d(1, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)
        fc_in_features = resnet.fc.in_features
        self.resnet = nn.Sequential(*list(resnet.children())[:-1])  # drop the fc layer
        self.fc = nn.Sequential(nn.Linear(fc_in_features * 2, 256), nn.ReLU(inplace=True), nn.Linear(256, 1))
        self.resnet.apply(self.init_weights)
        self.fc.apply(self.init_weights)

    @staticmethod
    def init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            m.bias.data.fill_(0.01)

    def forward_once(self, x):
        return self.resnet(x).flatten(1)

    def forward(self, a, b):
        out = torch.cat((self.forward_once(a), self.forward_once(b)), 1)
        return torch.sigmoid(self.fc(out)).view(-1)


# ---------------------------------------------------------------- data


def images(n, gen):
    return ((torch.rand(n, 1, 28, 28, generator=gen) - 0.1307) / 0.3081,)


def images_and_labels(n, gen):
    return images(n, gen) + (torch.randint(0, 10, (n,), generator=gen),)


def image_pairs(n, gen):  # (image 1, image 2, 1.0 if same digit else 0.0)
    return images(n, gen) + images(n, gen) + (torch.randint(0, 2, (n,), generator=gen).float(),)


# ---------------------------------------------------------------- training


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--model", choices=MODELS, default="mnist")
    parser.add_argument("-e", "--epochs", type=positive_int, default=10)
    parser.add_argument("-l", "--learning-rate", type=positive_float, default=0.01)
    parser.add_argument("-b", "--batch-size", type=positive_int, default=32)
    parser.add_argument("--seed", type=non_negative_int, default=1)
    args, device = start_workload(parser, argv)
    pairs = args.model == "siamese"
    make = image_pairs if pairs else images_and_labels
    train = BatchPool(make, args.batch_size, TRAIN_SAMPLES, device, args.max_steps, seed=args.seed)
    test = BatchPool(make, TEST_BATCH, TEST_SAMPLES, device, args.max_steps, seed=args.seed + 1)

    if args.model == "mnist_ff":
        with on_device(device):
            model = FFNet(args.learning_rate)
        optimizer = scheduler = None
        # the original also reports the error on the training set
        train_eval = BatchPool(make, TEST_BATCH, TRAIN_SAMPLES, device, args.max_steps, seed=args.seed)
    else:
        with on_device(device):
            model = {"mnist": MnistNet, "mnist_rnn": MnistRNN, "siamese": SiameseNetwork}[args.model]()
        optimizer = torch.optim.Adadelta(model.parameters(), lr=args.learning_rate)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    log_config(
        workload="examples",
        model=args.model,
        device=device.type,
        batch_size=args.batch_size,
        steps_per_epoch=len(train),
        eval_batches=len(test),
        params=parameter_count(model),
    )

    loop = TrainingLoop(device, train, args.epochs, args.min_train_s)
    for epoch in loop:
        correct = torch.zeros((), device=device)
        for batch in loop.batches(model):
            if args.model == "mnist_ff":
                loss = model.train_batch(*batch)
            else:
                optimizer.zero_grad()
                if pairs:
                    output = model(batch[0], batch[1])
                    loss = F.binary_cross_entropy(output, batch[2])
                    correct += ((output > 0.5).float() == batch[2]).sum()
                else:
                    output = model(batch[0])
                    loss = F.nll_loss(output, batch[1])
                    correct += (output.argmax(1) == batch[1]).sum()
                loss.backward()
                optimizer.step()
            loop.step_done(loss)
        if scheduler is not None:
            scheduler.step()

        # evaluation pass (its memory counts)
        with torch.no_grad():
            test_correct = torch.zeros((), device=device)
            for batch in test:
                if args.model == "mnist_ff":
                    test_correct += (model.predict(batch[0]) == batch[1]).sum()
                elif pairs:
                    test_correct += ((model(batch[0], batch[1]) > 0.5).float() == batch[2]).sum()
                else:
                    test_correct += (model(batch[0]).argmax(1) == batch[1]).sum()
            if args.model == "mnist_ff":
                correct = sum((model.predict(x) == y).sum() for x, y in train_eval)
                train_seen = len(train_eval) * TEST_BATCH
            else:
                train_seen = len(train) * args.batch_size
        test_accuracy = float(test_correct) / (len(test) * TEST_BATCH)
        train_error = 1.0 - float(correct) / train_seen
        log(f"Epoch {epoch} eval: score {test_accuracy:.4f}")

    log(f"Test Accuracy: {100.0 * test_accuracy:.2f}%")
    log(f"Test Error: {1.0 - test_accuracy:.4f}")
    log(f"train error: {train_error:.4f}")
    finish(device, loop.timer)


if __name__ == "__main__":
    main()
