"""pytorch/examples workloads: mnist, mnist_rnn, mnist_ff, siamese."""
