"""bug-localization-by-dnn-and-rvsm on synthetic features (CPU only, no torch).

As the original: every bug report has 51 candidate source files (its buggy
file and 50 wrong ones), each described by 5 features (rVSM similarity,
collaborative-filter score, class-name similarity, bug-fixing recency and
frequency); buggy rows are oversampled 10x for training; a scikit-learn MLP
(one hidden layer of 300, SGD, n_iter_no_change=30) is trained per fold of a
k-fold cross validation, the folds running in parallel with joblib
(n_jobs=-2: all cores but one), and the candidates of the held-out reports
are ranked to give Top-k accuracy. The original regresses relevancy with an
MLPRegressor; this workload uses MLPClassifier and ranks by
predict_proba, at the same cost.

Synthetic size: 6,495 bug reports (the Eclipse Platform UI data set of the
original) x 51 candidates = 331,245 rows of 5 features, about 390,000 rows
after oversampling; the buggy file's features are shifted up a little so the
ranking is learnable.
"""

import argparse
import time
import warnings

from gpupair_search.workloads.common import (
    finish,
    log,
    log_config,
    non_negative_float,
    non_negative_int,
    parse_args,
    positive_int,
)

# common first: the workload's clock starts at its import, so startup_s includes the imports below
# isort: split
import numpy as np
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold
from sklearn.neural_network import MLPClassifier

N_REPORTS, CANDIDATES, N_FEATURES = 6_495, 51, 5
OVERSAMPLE = 10
TOP_K = (1, 5, 10, 20)


def make_features(seed):
    rng = np.random.default_rng(seed)
    features = rng.random((N_REPORTS, CANDIDATES, N_FEATURES))
    buggy = rng.integers(0, CANDIDATES, N_REPORTS)  # index of the buggy file among the candidates
    features[np.arange(N_REPORTS), buggy] += 0.25
    return features, buggy


def run_fold(fold, train_idx, test_idx, features, buggy, args, max_iter):
    warnings.simplefilter("ignore", ConvergenceWarning)
    labels = np.zeros((N_REPORTS, CANDIDATES), dtype=np.int64)
    labels[np.arange(N_REPORTS), buggy] = 1
    x = features[train_idx].reshape(-1, N_FEATURES)
    y = labels[train_idx].reshape(-1)
    extra = np.repeat(features[train_idx, buggy[train_idx]], OVERSAMPLE - 1, axis=0)  # oversampling
    x, y = np.concatenate([x, extra]), np.concatenate([y, np.ones(len(extra), dtype=np.int64)])
    order = np.random.default_rng(args.seed + fold).permutation(len(x))

    clf = MLPClassifier(
        solver="sgd",
        alpha=args.alpha,
        hidden_layer_sizes=(300,),
        random_state=args.seed,
        max_iter=max_iter,
        n_iter_no_change=30,
    )
    clf.fit(x[order], y[order])

    relevancy = clf.predict_proba(features[test_idx].reshape(-1, N_FEATURES))[:, 1].reshape(len(test_idx), CANDIDATES)
    rank = (relevancy > relevancy[np.arange(len(test_idx)), buggy[test_idx], None]).sum(1)
    return {k: float((rank < k).mean()) for k in TOP_K}, clf.n_iter_


def nonzero_int(text):
    value = int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("n_jobs must not be 0 (use -1 for all cores, -2 for all but one)")
    return value


def at_least_two(text):
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError("kfold must be >= 2")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max_iter", type=positive_int, default=10_000)
    parser.add_argument("--kfold", type=at_least_two, default=10)
    parser.add_argument("--alpha", type=non_negative_float, default=1e-5)
    parser.add_argument("--seed", type=non_negative_int, default=42)
    parser.add_argument("--n_jobs", type=nonzero_int, default=-2)
    args = parse_args(parser, argv)  # --max-steps > 0 caps max_iter
    max_iter = min(args.max_iter, args.max_steps) if args.max_steps else args.max_iter

    features, buggy = make_features(args.seed)
    log_config(
        workload="bug-localization-by-dnn-and-rvsm",
        model="default",
        device="cpu",
        reports=N_REPORTS,
        rows=N_REPORTS * CANDIDATES,
        kfold=args.kfold,
        n_jobs=args.n_jobs,
        max_iter=max_iter,
    )
    folds = KFold(n_splits=args.kfold, shuffle=True, random_state=args.seed).split(np.arange(N_REPORTS))
    start = time.perf_counter()
    results = Parallel(n_jobs=args.n_jobs)(
        delayed(run_fold)(i, train_idx, test_idx, features, buggy, args, max_iter)
        for i, (train_idx, test_idx) in enumerate(folds)
    )
    for i, (acc, n_iter) in enumerate(results, 1):
        log(f"Fold {i}/{args.kfold}: iterations {n_iter}, top1 {acc[1]:.3f}")
    log(f"Trained {args.kfold} folds in {time.perf_counter() - start:.1f} s")

    for k in TOP_K:
        log(f"Top-{k} Accuracy: {np.mean([acc[k] for acc, _ in results]):.4f}")
    finish(None, None)


if __name__ == "__main__":
    main()
