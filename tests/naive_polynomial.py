"""Per-sample Kronecker-product reference for polynomial features (the reference code's layout)."""

import numpy as np
import torch


def kronecker_features(z_row, degree):
    """[1, z, z(x)z, z(x)z(x)z, ...] for one sample: every ordered index tuple, duplicates included."""
    feats = [np.ones(1)]
    current = np.ones(1)
    for _ in range(degree):
        current = np.kron(current, z_row)
        feats.append(current)
    return np.concatenate(feats)


def kronecker_index_tuples(z_dim, degree):
    """The ordered index tuple behind each Kronecker column, in the same order as kronecker_features."""
    tuples = [()]
    current = [()]
    for _ in range(degree):
        current = [t + (i,) for t in current for i in range(z_dim)]
        tuples += current
    return tuples


def naive_polynomial_decoder(z, weight, bias, degree, column_of_tuple):
    """Loop over samples: Kronecker features, each column mapped onto the distinct monomial's weight."""
    rows = []
    tuples = kronecker_index_tuples(z.shape[1], degree)
    for n in range(z.shape[0]):
        feats = [torch.ones(1, dtype=z.dtype)]
        current = torch.ones(1, dtype=z.dtype)
        for _ in range(degree):
            current = torch.kron(current, z[n])
            feats.append(current)
        k = torch.cat(feats)[1:]  # the constant is the bias
        # Each distinct monomial's weight is shared by its duplicated Kronecker columns, split evenly.
        cols = [column_of_tuple[tuple(sorted(t))] for t in tuples[1:]]
        counts = np.bincount(cols)
        w = weight[:, cols] / torch.as_tensor(counts[cols], dtype=z.dtype)
        rows.append(w @ k + bias)
    return torch.stack(rows)
