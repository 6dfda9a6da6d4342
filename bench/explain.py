"""Explanations: Attest's explainers against shap's KernelExplainer, in one run.

Three models on the same 30-feature data (``make_classification``, 5,000 training rows):
a 200-tree random forest (``--forest-depth``, default 6), gradient boosting (100 trees of
depth 3) and a logistic regression behind a StandardScaler. Each is registered as a
model version in a throw-away SQLite database, so every Attest figure goes through the
product's own path (``explain.shapley.shap_rows`` after ``explain.choice``: TreeExplainer
for the trees, LinearExplainer for the scaled logistic regression).

per row    the median time of one row's explanation over ``--rows`` rows;
1,000 rows one call on 1,000 rows;
Kernel     shap's KernelExplainer on the positive class's probability with a 50-row
           k-means background (``shap.kmeans``), on the same rows: per row, the median
           over ``--kernel-rows`` rows; its 1,000-row figure is that median × 1,000
           (running it would take minutes per model), marked "est.";
ratio      Kernel ÷ Attest, for the same rows.

Also: Attest's permutation explainer and LIME (5,000 samples) per row for the forest;
the per-version job (global importance + LIME stability on 50 rows × 5 seeds + SHAP–LIME
agreement) for the forest; and an explained single prediction over HTTP (Django's test
client, SQLite) against the unexplained one, requests interleaved, medians.

    .venv/bin/python bench/explain.py [--rows 200] [--kernel-rows 10] [--http 200]

Exit status: 0 done (targets met or not: they are printed), 1 the benchmark failed,
2 bad arguments (one-line reason).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

# bench/ is sys.path[0] when a script runs as `python bench/NAME.py`
from machine_info import (  # noqa: E402,I001
    BadArguments,
    BenchError,
    Parser,
    django_setup,
    header_lines,
    load_average,
    table,
)

PROG = "bench/explain.py"
N_FEATURES = 30
TRAIN_ROWS = 5000
TARGET_RATIO = 100.0  # tree and linear >= 100x faster than Kernel
TARGET_FOREST_1000_S = 2.0
TARGET_RELIABILITY_S = 60.0
TARGET_HTTP_DELTA_MS = 2.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(prog=PROG, description=__doc__.split("\n\n", 1)[0],
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200,
                        help="rows explained one at a time per model (default 200)")
    parser.add_argument("--kernel-rows", type=int, default=10,
                        help="rows KernelExplainer explains per model (default 10)")
    parser.add_argument("--http", type=int, default=200,
                        help="requests of each kind for the HTTP comparison, 0 to skip "
                             "(default 200)")
    parser.add_argument("--forest-depth", type=int, default=6,
                        help="max_depth of the forest's trees, 0 for unpruned (default 6)")
    parser.add_argument("--skip-reliability", action="store_true",
                        help="skip the per-version job")
    args = parser.parse_args(argv)
    if args.rows < 10 or args.kernel_rows < 1 or args.http < 0 or args.forest_depth < 0:
        raise BadArguments("--rows needs at least 10, --kernel-rows at least 1, --http and "
                           "--forest-depth at least 0")
    return args


def _setup_environment(tmp: Path) -> None:
    os.environ["ATTEST_DATA_DIR"] = str(tmp)
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.pop("ATTEST_S3_BUCKET", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    # One core's work per explanation: keep BLAS/OpenMP from oversubscribing two cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MPLCONFIGDIR", str(tmp / "mpl"))
    django_setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _data():
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=TRAIN_ROWS + 1000, n_features=N_FEATURES,
                               n_informative=10, random_state=0)
    names = [f"x{i:02d}" for i in range(N_FEATURES)]
    labels = np.where(y == 1, "yes", "no")
    train = pd.DataFrame(X[:TRAIN_ROWS], columns=names)
    test = pd.DataFrame(X[TRAIN_ROWS:], columns=names)
    return train, labels[:TRAIN_ROWS], test, names


def _models(train, y, depth: int):
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "forest": RandomForestClassifier(n_estimators=200, max_depth=depth or None,
                                         random_state=0, n_jobs=1).fit(train, y),
        "boosting": GradientBoostingClassifier(n_estimators=100, max_depth=3,
                                               random_state=0).fit(train, y),
        "logistic": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        .fit(train, y),
    }


def _register(owner, model, train, y, name: str, estimator):
    import skops.io as sio
    from django.core.files.uploadedfile import SimpleUploadedFile

    from registry import services

    frame = train.copy()
    frame["label"] = y
    dataset = services.dataset_version_register(
        user=owner, name=f"bench-{name}", version="1", source="bench/explain.py",
        data_file=SimpleUploadedFile("train.csv", frame.to_csv(index=False).encode()))
    data = sio.dumps(estimator)
    return services.model_version_register(
        user=owner, model=model, artifact=SimpleUploadedFile("m.skops", data),
        metadata={"dataset": dataset.pk, "input_schema": list(train.columns),
                  "trusted_types": sio.get_untrusted_types(data=data)})


def _median_ms(fn, items) -> float:
    times = []
    for item in items:
        started = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _kernel_ms(estimator, train, rows, positive: int) -> float:
    import shap

    background = shap.kmeans(train.to_numpy(), 50)

    def f(matrix):
        import pandas as pd

        return estimator.predict_proba(pd.DataFrame(matrix, columns=train.columns))[:, positive]

    explainer = shap.KernelExplainer(f, background)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _median_ms(lambda r: explainer.shap_values(r.reshape(1, -1), silent=True), rows)


def _http(owner, version, row: dict, n: int) -> tuple[float, float]:
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(owner)
    url = f"/api/v1/models/{version.model.name}/predict/"
    plain = {"inputs": row, "version": version.number}
    explained = {**plain, "explain": "shap"}
    # The explanation is stored per input: vary the input so every request computes one.
    for _ in range(20):
        client.post(url, plain, format="json")
        client.post(url, explained, format="json")
    times: dict[str, list[float]] = {"plain": [], "explained": []}
    for i in range(n):
        varied = {**row, "x00": row["x00"] + i * 1e-7}
        for kind, body in (("plain", plain), ("explained", explained)):
            body = {**body, "inputs": varied}
            started = time.perf_counter()
            response = client.post(url, body, format="json")
            times[kind].append((time.perf_counter() - started) * 1000)
            if response.status_code != 200 or (kind == "explained" and
                                               "content" not in response.json()["explanation"]):
                raise BenchError(f"the {kind} prediction failed: {response.content[:300]!r}")
    return statistics.median(times["plain"]), statistics.median(times["explained"])


def run(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="attest-bench-explain-"))
    try:
        _setup_environment(tmp)
        return _run(args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args: argparse.Namespace) -> int:  # noqa: C901 - one report, step by step
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    from explain.choice import explainer_choose
    from explain.compute import explanation_compute
    from explain.reliability import version_figures
    from explain.services import explanation_parameters
    from explain.shapley import shap_rows
    from explain.space import FeatureSpace, background_for
    from registry import services

    print("\n".join(header_lines(("shap", "lime", "scikit-learn", "numpy", "Django"))))
    train, y, test, names = _data()
    owner = get_user_model().objects.create_user(username="bench-owner",
                                                 password=None)  # never signs in
    owner.user_permissions.add(Permission.objects.get(codename="add_registeredmodel",
                                                      content_type__app_label="registry"))
    owner = get_user_model().objects.get(pk=owner.pk)
    model = services.registered_model_create(user=owner, name="bench-explain")
    estimators = _models(train, y, args.forest_depth)
    rows = test.to_numpy()
    single = rows[:args.rows]
    thousand = rows[:1000]
    kernel_rows = rows[:args.kernel_rows]
    report, targets, versions = [], [], {}
    for name, estimator in estimators.items():
        version = _register(owner, model, train, y, name, estimator)
        versions[name] = version
        space = FeatureSpace.of(version)
        background = background_for(version, space)
        choice = explainer_choose(version=version)
        shap_rows(version, space, single[:2], background, seed=0, choice=choice)  # warm
        per_row = _median_ms(lambda r, v=version, s=space, b=background, c=choice: shap_rows(
            v, s, r.reshape(1, -1), b, seed=0, choice=c), single)
        started = time.perf_counter()
        result = shap_rows(version, space, thousand, background, seed=0, choice=choice)
        batch_s = time.perf_counter() - started
        positive = list(estimator.classes_).index("yes")
        kernel = _kernel_ms(estimator, train, kernel_rows, positive)
        ratio = kernel / per_row
        ratio_1000 = kernel * 1000 / 1000 / batch_s
        report.append([name, f"{result.kind} ({result.units})",
                       f"{choice.cost.get('estimated_ms_per_row', '—')}",
                       f"{per_row:.3f}", f"{batch_s:.3f}", f"{kernel:.1f}",
                       f"{kernel:.0f} est.", f"{ratio:,.0f}×", f"{ratio_1000:,.0f}×",
                       f"{result.residual:.1e}"])
        if name in ("forest", "boosting", "logistic"):
            targets.append((f"{name}: ≥ {TARGET_RATIO:.0f}× faster than Kernel per row",
                            ratio >= TARGET_RATIO, f"{ratio:,.0f}×"))
        if name == "forest":
            targets.append((f"forest: 1,000 rows in ≤ {TARGET_FOREST_1000_S} s",
                            batch_s <= TARGET_FOREST_1000_S, f"{batch_s:.2f} s"))
    print(f"\nSHAP, {N_FEATURES} features; Kernel = shap.KernelExplainer, 50-row k-means "
          f"background, same rows; times in ms unless marked; forest max_depth "
          f"{args.forest_depth or 'unpruned'}\n")
    print(table(["model", "Attest explainer", "estimated ms/row", "per row ms",
                 "1,000 rows s", "Kernel per row ms", "Kernel 1,000 rows s", "ratio per row",
                 "ratio 1,000 rows", "max |residual|"], report))

    # The model-agnostic paths on the forest, per row.
    forest = versions["forest"]
    space = FeatureSpace.of(forest)
    from explain.shapley import permutation_rows

    background = background_for(forest, space)
    permutation = _median_ms(lambda r: permutation_rows(
        forest, space, r.reshape(1, -1), background, seed=0, reason=""), rows[:5])
    _, lime_params = explanation_parameters("lime", {})
    as_inputs = [dict(zip(names, map(float, r), strict=True)) for r in rows[:5]]
    lime = _median_ms(lambda r: explanation_compute(version=forest, inputs=r, method="lime",
                                                    parameters=lime_params), as_inputs)
    print("\nforest, model-agnostic, per row (median of 5 rows)\n")
    print(table(["explainer", "per row ms"], [
        ["Attest permutation (10 permutations, 100 background rows)", f"{permutation:.1f}"],
        ["Attest LIME (5,000 samples, training-profile quartiles)", f"{lime:.1f}"]]))

    if not args.skip_reliability:
        started = time.perf_counter()
        figures = version_figures(version=forest)
        took = time.perf_counter() - started
        c = figures["content"]
        print("\nforest, per-version figures (global importance on "
              f"{c['global_importance']['rows']} rows, LIME on {c['lime_stability']['rows']} "
              f"rows × {len(c['lime_stability']['seeds'])} seeds)\n")
        print(table(["job", "seconds", "LIME stability mean / worst", "SHAP–LIME top-5",
                     "reading"], [[
                         "version figures", f"{took:.1f}",
                         f"{c['lime_stability']['mean']:.2f} / "
                         f"{c['lime_stability']['worst']:.2f}",
                         f"{c['shap_lime_agreement']['feature_agreement']:.2f} features, "
                         f"{(c['shap_lime_agreement']['sign_agreement'] or 0):.2f} signs",
                         c["lime_stability"]["reading"]]]))
        targets.append((f"forest: per-version job ≤ {TARGET_RELIABILITY_S:.0f} s",
                        took <= TARGET_RELIABILITY_S, f"{took:.1f} s"))

    if args.http:
        row = dict(zip(names, map(float, rows[0]), strict=True))
        plain, explained = _http(owner, forest, row, args.http)
        delta = explained - plain
        print(f"\nforest, one prediction over HTTP (Django test client, SQLite, "
              f"{args.http} of each, interleaved; medians)\n")
        print(table(["request", "ms", "difference"], [
            ["predict", f"{plain:.2f}", ""],
            ['predict + "explain": "shap" (stored, audited)', f"{explained:.2f}",
             f"+{delta:.2f} ms"]]))
        targets.append((f"forest: explained prediction within {TARGET_HTTP_DELTA_MS} ms of the "
                        "unexplained one", delta <= TARGET_HTTP_DELTA_MS, f"+{delta:.2f} ms"))

    print("\ntargets\n")
    print(table(["target", "met", "measured"],
                [[t, "yes" if ok else "no", m] for t, ok, m in targets]))
    print(f"\nload average at end {load_average()}")

    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        return run(args)
    except BadArguments as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except BenchError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
