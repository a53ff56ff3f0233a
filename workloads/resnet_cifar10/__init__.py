"""Classic CIFAR-10 ResNets (akamaster/pytorch_resnet_cifar10 style)."""
