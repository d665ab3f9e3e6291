"""scikit-learn's LogisticRegression on a fixed random embedding matrix: the peer of few_shot_test.

Writes into OUT: x.f32 (n x d, rows L2-normalized), y.i32 (n class indices), targets.u8 (n x K multi-label 0/1) and
reference.json with, for each C, the multinomial fit (coef, intercept, predict_proba) and the one-logistic-per-label
fits (multi-label). Exits 77 (CTest's skip) without scikit-learn.
"""
import json
import os
import sys

try:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
except ImportError:
    sys.exit(77)

N, D, K = 240, 24, 6
CS = [0.1, 1.0, 10.0]
# Tight enough that scikit-learn's own optimum is far inside the test's tolerances (its default, 1e-4, is not).
TOL, MAX_ITER = 1e-10, 100000


def main(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(16)
    centers = rng.standard_normal((K, D))
    y = np.arange(N) % K
    x = centers[y] * 0.6 + rng.standard_normal((N, D))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    targets = np.zeros((N, K), dtype=np.uint8)
    targets[np.arange(N), y] = 1
    targets[rng.random((N, K)) < 0.2] = 1
    x.tofile(os.path.join(out, "x.f32"))
    y.astype(np.int32).tofile(os.path.join(out, "y.i32"))
    targets.tofile(os.path.join(out, "targets.u8"))
    xd = x.astype(np.float64)
    ref = {"n": N, "dim": D, "classes": K, "single": [], "multi": []}
    for c in CS:
        m = LogisticRegression(C=c, multi_class="multinomial", solver="lbfgs", tol=TOL, max_iter=MAX_ITER).fit(xd, y)
        ref["single"].append({"C": c, "coef": m.coef_.ravel().tolist(), "intercept": m.intercept_.tolist(),
                              "proba": m.predict_proba(xd).ravel().tolist()})
        coef, intercept, proba = [], [], []
        for k in range(K):
            b = LogisticRegression(C=c, solver="lbfgs", tol=TOL, max_iter=MAX_ITER).fit(xd, targets[:, k])
            coef.append(b.coef_[0])
            intercept.append(b.intercept_[0])
            proba.append(b.predict_proba(xd)[:, 1])
        ref["multi"].append({"C": c, "coef": np.concatenate(coef).tolist(), "intercept": intercept,
                             "proba": np.stack(proba, axis=1).ravel().tolist()})
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f)


if __name__ == "__main__":
    main(sys.argv[1])
