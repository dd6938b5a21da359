"""The ``aquasurf`` command line: every subcommand's parser and handler.

    aquasurf space count SCHEMA... [--operators SET] [--json]
    aquasurf space build SCHEMA... [--operators SET] [--out DIR] [--json]
    aquasurf space map [--space SPACE] [--out DIR] [--pca 50] [--seed 0] [--limit N]
    aquasurf fim --arch NAME --fn NAME [--device cpu|cuda] [--batch-size N] [--seed S] [--json]
    aquasurf bench build --arch ARCH [--seeds 0 1 2] [--workers 2] [--limit N] ...
    aquasurf bench status --arch ARCH [--ledger PATH]
    aquasurf search run --task NAME [--evaluations 50] [--features 2000] [--workers 2]
                        [--space SPACE] [--operators SET]
                        [--surrogate lgp-ucb|knr-union] [--extra-features 0.5]
                        [--batch believer|independent]
                        [--scheduler-address ADDR] [--ledger PATH] [--device cpu|cuda]
                        [--factor-dtype auto|float32|float64] [--on-unsupported error|skip]
                        [--min-coverage F]
    aquasurf search status|export [--task NAME | --ledger PATH] [--out FILE]
    aquasurf search compare --task NAME [--ledger PATH] [--top 3] [--seeds 0 1 2]
                            [--final | --transfer OTHER]
    aquasurf search ship --task NAME [--ledger PATH] [--out DIR] [--command TEXT]
    aquasurf reproduce --profile smoke|paper [--only 01 02 ...] [--output-root DIR]
    aquasurf inspect [--bench ARCH] [--port N] [--no-browser]

SPACE, SET and ARCH are names from the registries, never written out here: the named spaces
(:data:`aquasurf_core.space.schemas.NAMED_SPACES`, default
:data:`~aquasurf_core.space.schemas.DEFAULT_SPACE`), the operator sets
(:data:`aquasurf_core.space.operators.OPERATOR_SETS`, default
:data:`~aquasurf_core.space.operators.DEFAULT_OPERATOR_SET`) and the benchmark architectures
(:data:`aquasurf_core.models.BENCHMARK_ARCHS`). Those modules import torch, so the parser reads
them only when it needs them -- to check a value or show a subcommand's help (:class:`_Names`,
:class:`_Default`) -- and building it imports nothing heavy.

Handlers parse and print; the work is done by the library (:mod:`aquasurf_core.space.store`,
:mod:`aquasurf_core.features.fim`, :mod:`aquasurf_core.bench.build`,
:mod:`aquasurf_core.pipeline`, :mod:`aquasurf_core.inspector.page`), imported only when a
subcommand runs so that ``aquasurf --help`` stays fast. Errors a user can fix (a bad name,
schema, option or file) print one line naming the problem and exit with status 2; a failed
notebook exits with 1. ``inspect`` serves until Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Callable

from aquasurf_core.live_names import LiveNames


class _Default:
    """An option's default that a registry module names, read when the subcommand is parsed
    (:class:`_Parser` puts the value in the namespace) or its help shows ``%(default)s``."""

    def __init__(self, read: Callable[[], str]):
        self.read = read

    def __str__(self) -> str:
        return str(self.read())


class _Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that resolves the options left at a :class:`_Default`
    (the subcommands' parsers are of this class too)."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        for key, value in vars(namespace).items():
            if isinstance(value, _Default):
                setattr(namespace, key, value.read())
        return namespace, extras


def _spaces():
    from aquasurf_core.space.schemas import NAMED_SPACES

    return NAMED_SPACES


def _default_space() -> str:
    from aquasurf_core.space.schemas import DEFAULT_SPACE

    return DEFAULT_SPACE


def _operator_sets():
    from aquasurf_core.space.operators import OPERATOR_SETS

    return OPERATOR_SETS


def _default_operator_set() -> str:
    from aquasurf_core.space.operators import DEFAULT_OPERATOR_SET

    return DEFAULT_OPERATOR_SET


def _benchmark_archs():
    from aquasurf_core.models import BENCHMARK_ARCHS

    return BENCHMARK_ARCHS


#: ``choices`` and defaults of the options that name a space, an operator set or a benchmark
#: architecture (module docstring).
_SPACES, _DEFAULT_SPACE = LiveNames(_spaces), _Default(_default_space)
_OPERATOR_SETS, _DEFAULT_OPERATOR_SET = LiveNames(_operator_sets), _Default(_default_operator_set)
_BENCHMARK_ARCHS = LiveNames(_benchmark_archs)
_FIRST_BENCHMARK = _Default(lambda: _benchmark_archs()[0])


def _error(command: str, err: BaseException) -> int:
    print(f"aquasurf {command}: error: {err}", file=sys.stderr)
    return 2


# ----------------------------------------------------------------------------- space
def _space_count(args: argparse.Namespace) -> int:
    from aquasurf_core.space.evaluation import DEFAULT_SIGNED_ZERO_DISTINCT
    from aquasurf_core.space.schemas import InvalidSchema
    from aquasurf_core.space.store import count_space

    try:
        result = count_space(args.schemas, args.operators, progress=not args.json)
    except (InvalidSchema, ValueError) as err:
        return _error("space count", err)
    if args.json:
        print(json.dumps(result))
    else:
        rule = "-0 != +0" if DEFAULT_SIGNED_ZERO_DISTINCT else "-0 == +0"
        print(f"{result['functions']:,} functions, {result['unique']:,} unique "
              f"(outputs on 1,000 N(0,1) inputs, NaN == NaN, {rule}); "
              f"{result['seconds']:.1f} s")
    return 0


def _space_build(args: argparse.Namespace) -> int:
    from aquasurf_core.space.schemas import InvalidSchema
    from aquasurf_core.space.store import SpaceStoreError, build_space

    try:
        store = build_space(args.schemas, args.operators, out_dir=args.out, progress=True)
    except (InvalidSchema, SpaceStoreError, ValueError) as err:
        return _error("space build", err)
    summary = {"path": str(store.path), "functions": store.n_functions,
               "unique": store.n_unique, "seconds": store.manifest["seconds"]["total"]}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{store.n_functions:,} functions, {store.n_unique:,} unique -> {store.path}")
    return 0


def _space_map(args: argparse.Namespace) -> int:
    from aquasurf_core.embedding.space_map import (
        SHIPPED_MAP,
        SpaceMapError,
        fit_space_map,
        shipped_map_dir,
        write_space_map,
    )
    from aquasurf_core.space.schemas import NAMED_SPACES
    from aquasurf_core.space.store import SpaceStoreError, build_space

    if args.limit is not None and args.limit < 1:
        return _error("space map", ValueError(f"--limit must be >= 1, got {args.limit}"))
    shipped = SHIPPED_MAP[-1]  # the space of the map that ships with the package
    out = args.out or (shipped_map_dir() if args.space == shipped else None)
    if out is None:
        return _error("space map", ValueError(f"--out is required for the {args.space} map "
                                              f"(only the {shipped} map ships with the "
                                              "package)"))
    try:
        store = build_space(NAMED_SPACES[args.space], progress=True)
        pca = None if args.pca == 0 else args.pca
        print(f"aquasurf space map: embedding {args.limit or store.n_unique:,} functions of the "
              f"{args.space} space by their outputs (PCA {pca}, UMAP; long: see the module "
              "docstring of aquasurf_core.embedding.space_map)", file=sys.stderr)
        space_map = fit_space_map(store, pca_components=pca, seed=args.seed, limit=args.limit,
                                  verbose=True)
        path = write_space_map(space_map, out)
    except (SpaceMapError, SpaceStoreError, ValueError) as err:
        return _error("space map", err)
    print(f"{len(space_map):,} functions mapped in {space_map.manifest['seconds']['total']:.0f} s "
          f"(variance kept by the projection {space_map.manifest['explained_variance']:.5f}) "
          f"-> {path}")
    return 0


# ----------------------------------------------------------------------------- fim
def _fim(args: argparse.Namespace) -> int:
    from aquasurf_core import models
    from aquasurf_core.features.fim import DEFAULT_BATCH_SIZE, fim_features_batch
    from aquasurf_core.space.names import InvalidFunctionName

    try:
        if args.arch not in models.ARCHITECTURES:
            raise ValueError(f"unknown architecture {args.arch!r}; known: "
                             f"{', '.join(sorted(models.ARCHITECTURES))}")
        batch_size = DEFAULT_BATCH_SIZE if args.batch_size is None else args.batch_size
        if batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
        (feats,) = fim_features_batch(args.arch, [args.fn], seed=args.seed, device=args.device,
                                      batch_size=batch_size, progress=False)
    except (ValueError, RuntimeError, InvalidFunctionName) as err:
        return _error("fim", err)
    if args.json:
        print(json.dumps({"arch": args.arch, "fn": args.fn, "device": args.device,
                          "batch_size": batch_size, "seed": args.seed, **feats.summary_dict()},
                         allow_nan=True))
        return 0
    print(f"{args.arch}  fn={args.fn}  device={args.device}  batch={batch_size}  seed={args.seed}")
    print(f"{'layer':<36} {'kind':<9} {'|theta|':>9} {'bins':>6} {'Omega':>6} {'Gamma':>6} "
          f"{'zeros':>8} {'min log':>9} {'max log':>9}")
    for s in feats.layers:
        print(f"{s.name:<36} {s.kind:<9} {s.num_params:>9} {s.bins:>6} {s.omega_dim:>6} "
              f"{s.gamma_dim:>6} {s.n_zero:>8} {s.min_log:>9.3f} {s.max_log:>9.3f}")
    for s in feats.skipped:
        print(f"skipped {s.name} ({s.module_type}, {s.num_params} params): {s.reason}")
    print(f"features: {feats.layout.dim} entries, {len(feats.layers)} layers, "
          f"valid={feats.valid} ({feats.reason}), {feats.seconds:.3f} s")
    return 0


# ----------------------------------------------------------------------------- bench
def _bench_build(args: argparse.Namespace) -> int:
    from aquasurf_core.bench.build import BuildConfig, build_benchmark
    from aquasurf_core.training.recipes import get_recipe

    overrides = {k: v for k, v in (("epochs", args.epochs), ("train_subset", args.train_subset))
                 if v is not None}
    try:
        config = BuildConfig(arch=args.arch, seeds=tuple(args.seeds),
                             recipe=get_recipe(args.arch, **overrides),
                             group_size=args.group_size, limit=args.limit)
        build_benchmark(config, ledger_path=args.ledger, out_dir=args.out, workers=args.workers,
                        progress=not args.quiet)
    except (ValueError, FileNotFoundError) as err:
        return _error("bench build", err)
    return 0


def _bench_status(args: argparse.Namespace) -> int:
    from aquasurf_core.bench.ledger import default_ledger_path, read_summary

    try:
        summary = read_summary(args.ledger or default_ledger_path(args.arch))
    except FileNotFoundError as err:
        return _error("bench status", err)
    print(json.dumps(summary, indent=2))
    return 0


# ----------------------------------------------------------------------------- search
def _ledger_for(args: argparse.Namespace):
    from aquasurf_core.search.engine import default_ledger_path

    return args.ledger or default_ledger_path(args.task)


def _existing_ledger(args: argparse.Namespace):
    """The ledger a reading subcommand names; ``FileNotFoundError`` when there is none."""
    from pathlib import Path

    path = Path(_ledger_for(args))
    if not path.exists():
        raise FileNotFoundError(f"no search ledger at {path}")
    return path


def _search_run(args: argparse.Namespace) -> int:
    from aquasurf_core.search.engine import SearchConfig, run_search
    from aquasurf_core.search.tasks import TaskError

    try:
        extended = {}
        if args.operators == "coatnet":  # Table 3: the extended operators and 13 baselines
            from aquasurf_core.search.engine import EXTENDED_BASELINES

            extended = {"operators": "coatnet", "baselines": EXTENDED_BASELINES}
        config = SearchConfig(evaluations=args.evaluations, features=args.features,
                              space=args.space, seed=args.seed, device=args.device,
                              factor_dtype=args.factor_dtype,
                              on_unsupported=args.on_unsupported,
                              min_coverage=args.min_coverage, surrogate=args.surrogate,
                              extra_features=args.extra_features, batch=args.batch,
                              **extended)
        status = run_search(args.task, _ledger_for(args), config, workers=args.workers,
                            scheduler_address=args.scheduler_address,
                            progress=not args.quiet)
    except (TaskError, ValueError, FileNotFoundError) as err:
        return _error("search run", err)
    print(json.dumps(status, indent=2, default=str))
    return 0


def _search_status(args: argparse.Namespace) -> int:
    from aquasurf_core.search.engine import search_status
    from aquasurf_core.search.ledger import SearchLedger

    try:
        path = _existing_ledger(args)
    except FileNotFoundError as err:
        return _error("search status", err)
    with SearchLedger(path, readonly=True) as ledger:
        print(json.dumps(search_status(ledger), indent=2, default=str))
    return 0


def _search_export(args: argparse.Namespace) -> int:
    from aquasurf_core.search.engine import export_results
    from aquasurf_core.search.ledger import SearchLedger

    try:
        path = _existing_ledger(args)
    except FileNotFoundError as err:
        return _error("search export", err)
    from aquasurf_core.search.engine import write_table

    with SearchLedger(path, readonly=True) as ledger:
        table = export_results(ledger)
    if args.out is None:
        print(table.to_csv(index=False), end="")
    else:
        write_table(table, args.out)
    return 0


def _search_compare(args: argparse.Namespace) -> int:
    from aquasurf_core.search.comparisons import compare_with_baselines
    from aquasurf_core.search.tasks import TaskError

    try:
        path = _existing_ledger(args)
    except FileNotFoundError as err:
        return _error("search compare", err)
    try:
        table = compare_with_baselines(args.task, path, top=args.top, seeds=args.seeds,
                                       workers=args.workers,
                                       scheduler_address=args.scheduler_address,
                                       final_task=f"{args.task}-final" if args.final else None,
                                       transfer_task=args.transfer)
    except (TaskError, ValueError) as err:
        return _error("search compare", err)
    print(table.to_string(index=False))
    return 0


def _search_ship(args: argparse.Namespace) -> int:
    from aquasurf_core.paths import check_path_name, shipped_data_dir
    from aquasurf_core.search.shipped import ShippedSearchError, ship_search

    out = args.out or shipped_data_dir("searches", check_path_name(args.task))
    try:
        target = ship_search(_ledger_for(args), out, command=args.command)
    except (FileNotFoundError, FileExistsError, ShippedSearchError, ValueError) as err:
        return _error("search ship", err)
    print(f"shipped the {args.task} search to {target}")
    return 0


# ----------------------------------------------------------------------------- reproduce
def _reproduce(args: argparse.Namespace) -> int:
    from aquasurf_core.pipeline import PipelineError, format_manifest, run_pipeline

    try:
        manifest = run_pipeline(args.profile, only=args.only, output_root=args.output_root,
                                progress=not args.no_progress)
    except PipelineError as err:
        print(f"\naquasurf reproduce: FAILED\n{err}", file=sys.stderr)
        return 1
    print(format_manifest(manifest))
    return 0


# ----------------------------------------------------------------------------- inspect
def _inspect(args: argparse.Namespace) -> int:
    import signal

    from aquasurf_core.inspector.page import serve

    try:
        server = serve(args.bench, port=args.port, open_browser=not args.no_browser)
    except (RuntimeError, OSError, ValueError) as err:
        first, *log = str(err).splitlines()
        if log:  # Voila's log, after the one-line error
            print("\n".join(log), file=sys.stderr)
        return _error("inspect", first)
    # SIGTERM stops the server too (it runs in its own session, out of reach of the signal).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with server:
        print(f"inspector of {args.bench}: {server.url}  (Ctrl-C to stop)", flush=True)
        try:
            status = server.wait()
        except KeyboardInterrupt:
            return 0
    print(f"aquasurf inspect: the server stopped (status {status}):\n{server.log()[-2000:]}",
          file=sys.stderr)
    return 1


# ----------------------------------------------------------------------------- the parser
def _add_space(commands) -> None:
    space = commands.add_parser("space", help="the PANGAEA search space")
    sub = space.add_subparsers(dest="space_command", required=True)
    for name, handler, summary in [("count", _space_count, "count functions and unique functions"),
                                   ("build", _space_build, "evaluate, deduplicate and persist")]:
        cmd = sub.add_parser(name, help=summary)
        cmd.add_argument("schemas", nargs="+", metavar="SCHEMA",
                         help="e.g. 'binary(unary(x),unary(x))'")
        cmd.add_argument("--operators", default=_DEFAULT_OPERATOR_SET,
                         choices=_OPERATOR_SETS, metavar="SET",
                         help="operator set: %(choices)s (default: %(default)s)")
        cmd.add_argument("--json", action="store_true", help="print one JSON object")
        if name == "build":
            cmd.add_argument("--out", default=None, help="output directory (default: cache)")
        cmd.set_defaults(func=handler)
    cmd = sub.add_parser("map", help="embed a whole space by its outputs (UMAP; the appendix "
                                     "map), written as a space map")
    cmd.add_argument("--space", default=_DEFAULT_SPACE, choices=_SPACES, metavar="SPACE",
                     help="a named space: %(choices)s (default: %(default)s)")
    cmd.add_argument("--out", default=None,
                     help="output directory (default for 4-node: the map shipped in the package)")
    cmd.add_argument("--pca", type=int, default=50,
                     help="principal components kept before UMAP (0: no projection)")
    cmd.add_argument("--seed", type=int, default=0)
    cmd.add_argument("--limit", type=int, default=None,
                     help="map only the first LIMIT functions (trials)")
    cmd.set_defaults(func=_space_map)


def _add_fim(commands) -> None:
    fim = commands.add_parser("fim", help="K-FAC Fisher eigenvalue features of one function")
    fim.add_argument("--arch", required=True, help="architecture name (see aquasurf_core.models)")
    fim.add_argument("--fn", required=True, help="activation function name")
    fim.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    fim.add_argument("--batch-size", type=int, default=None)
    fim.add_argument("--seed", type=int, default=0)
    fim.add_argument("--json", action="store_true")
    fim.set_defaults(func=_fim)


def _add_bench(commands) -> None:
    bench = commands.add_parser("bench", help="build Act-Bench-Mini benchmarks")
    sub = bench.add_subparsers(dest="bench_command", required=True)
    build = sub.add_parser("build", help="train every 3-node function (resumable)")
    build.add_argument("--arch", required=True, choices=_BENCHMARK_ARCHS, metavar="ARCH",
                       help="a benchmark architecture: %(choices)s")
    build.add_argument("--seeds", type=int, nargs="+", default=[0])
    build.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    build.add_argument("--group-size", type=int, default=32,
                       help="functions trained together in one fused model")
    build.add_argument("--limit", type=int, default=None, help="only the first N functions")
    build.add_argument("--epochs", type=int, default=None, help="override the recipe")
    build.add_argument("--train-subset", type=int, default=None, help="override the recipe")
    build.add_argument("--ledger", default=None, help="ledger path (default: cache)")
    build.add_argument("--out", default=None, help="benchmark directory (default: shipped "
                       "package data for a full build)")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(func=_bench_build)
    status = sub.add_parser("status", help="what a build ledger holds")
    status.add_argument("--arch", required=True, choices=_BENCHMARK_ARCHS, metavar="ARCH",
                        help="a benchmark architecture: %(choices)s")
    status.add_argument("--ledger", default=None)
    status.set_defaults(func=_bench_status)


def _add_search(commands) -> None:
    search = commands.add_parser("search", help="the large-scale search on a task")
    sub = search.add_subparsers(dest="search_command", required=True)
    run = sub.add_parser("run", help="run or resume a search (resumable after any crash)")
    run.add_argument("--task", required=True, help="a registered task, e.g. digits-cnn")
    run.add_argument("--evaluations", type=int, default=50,
                     help="functions evaluated beyond the baselines (default 50)")
    run.add_argument("--features", type=int, default=2000,
                     help="functions with Fisher features before the surrogate is used")
    run.add_argument("--space", default=_DEFAULT_SPACE, choices=_SPACES, metavar="SPACE",
                     help="a named space: %(choices)s (default: %(default)s)")
    run.add_argument("--surrogate", default="lgp-ucb", choices=["lgp-ucb", "knr-union"],
                     help="what proposes the next function: GP-UCB on the raw Eq. 2 + Eq. 3 "
                          "distances (lgp-ucb, default), or the paper's KNR on the 2-D union "
                          "UMAP embedding (knr-union)")
    run.add_argument("--operators", default=_DEFAULT_OPERATOR_SET, choices=_OPERATOR_SETS,
                     metavar="SET", help="operator set: %(choices)s (default: %(default)s); "
                     "coatnet: the extended operator set and its 13 baselines (Table 3)")
    run.add_argument("--extra-features", type=float, default=0.5,
                     help="features computed after the search starts, as a fraction of "
                          "--features (default 0.5: at most 1.5 x --features functions get "
                          "them; then every worker evaluates)")
    run.add_argument("--batch", default="believer", choices=["believer", "independent"],
                     help="functions still being evaluated count at their predicted accuracy "
                          "(believer, default: parallel workers are sent to different "
                          "regions) or are only skipped (independent)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--workers", type=int, default=2, help="local dask workers (default 2)")
    run.add_argument("--scheduler-address", default=None,
                     help="an existing dask scheduler to run on instead")
    run.add_argument("--ledger", default=None, help="ledger path (default: cache)")
    run.add_argument("--device", default=None,
                     help="where the Fisher features, the check and (where the task supports "
                          "it) training run: cpu, cuda, cuda:1 ... (default: the task's own, "
                          "else cpu)")
    run.add_argument("--factor-dtype", default="auto", choices=["auto", "float32", "float64"],
                     help="precision of the K-FAC factors (default auto: the features' own)")
    # the defaults are SearchConfig's (tests/search/test_faults.py checks; importing the
    # engine here would slow every command's start)
    run.add_argument("--on-unsupported", default="skip",
                     choices=["error", "skip"],
                     help="a layer K-FAC cannot represent: leave it out of the spectrum and "
                          "report it (skip, default) or refuse the model (error)")
    run.add_argument("--min-coverage", type=float, default=0.5,
                     help="fraction of the parameters, in [0, 1], the K-FAC spectrum must "
                          "cover (default 0.5)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=_search_run)
    for name, handler, summary in [("status", _search_status, "what a search ledger holds"),
                                   ("export", _search_export, "a tidy table of the results")]:
        cmd = sub.add_parser(name, help=summary)
        cmd.add_argument("--task", default="digits-cnn", help="task (for the default ledger)")
        cmd.add_argument("--ledger", default=None, help="ledger path (default: cache)")
        if name == "export":
            cmd.add_argument("--out", default=None, help=".csv or .parquet (default: stdout)")
        cmd.set_defaults(func=handler)
    compare = sub.add_parser("compare", help="the best discovered functions against the "
                             "baselines, median over seeds (missing runs are trained)")
    compare.add_argument("--task", required=True, help="the task the search ran on")
    compare.add_argument("--ledger", default=None, help="ledger path (default: cache)")
    compare.add_argument("--top", type=int, default=3, help="discovered functions (default 3)")
    compare.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    compare.add_argument("--workers", type=int, default=2)
    compare.add_argument("--scheduler-address", default=None)
    compare.add_argument("--final", action="store_true",
                         help="train with TASK-final (longer, Table 1) into LEDGER-final.sqlite")
    compare.add_argument("--transfer", default=None, metavar="OTHER",
                         help="train on the task OTHER (Table 2) into "
                              "LEDGER-transfer-OTHER.sqlite")
    compare.set_defaults(func=_search_compare)
    ship = sub.add_parser("ship", help="export a finished search as checksummed data (what "
                          "the paper profile of notebook 05 reads)")
    ship.add_argument("--task", required=True)
    ship.add_argument("--ledger", default=None, help="ledger path (default: cache)")
    ship.add_argument("--out", default=None,
                      help="directory (default: aquasurf_core/data/searches/TASK)")
    ship.add_argument("--command", default="", help="the command the search was run with")
    ship.set_defaults(func=_search_ship)


def _add_reproduce(commands) -> None:
    from aquasurf_core.pipeline import ENV_OUTPUT_ROOT, PROFILES

    parser = commands.add_parser("reproduce", help="run the notebooks with papermill")
    parser.add_argument("--profile", default="paper", choices=PROFILES)
    parser.add_argument("--only", nargs="*", default=None,
                        help="notebook numbers or names to run (default: all)")
    parser.add_argument("--output-root", default=None,
                        help=f"write papermill_runs/ and figures/ under this directory instead "
                             f"of the repository (or set ${ENV_OUTPUT_ROOT})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=_reproduce)


def _add_inspect(commands) -> None:
    parser = commands.add_parser("inspect", help="explore the UMAP embeddings in a web page")
    parser.add_argument("--bench", default=_FIRST_BENCHMARK, choices=_BENCHMARK_ARCHS,
                        metavar="ARCH",
                        help="benchmark shown first: %(choices)s (default: %(default)s)")
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    parser.add_argument("--no-browser", action="store_true",
                        help="only print the URL; do not open a browser")
    parser.set_defaults(func=_inspect)


def build_parser() -> argparse.ArgumentParser:
    """The ``aquasurf`` argument parser with every subcommand (module docstring); each
    subcommand's handler is its namespace's ``func``. Building it imports nothing heavy."""
    parser = _Parser(
        prog="aquasurf",
        description="AQuaSurF: activation-function search with a Fisher/outputs surrogate.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_space(commands)
    _add_fim(commands)
    _add_bench(commands)
    _add_search(commands)
    _add_reproduce(commands)
    _add_inspect(commands)
    return parser


#: The failures a user can fix (a missing, damaged or wrong-kind file, a read-only or full disk,
#: an unreachable scheduler, a bad value): one line naming the problem, exit 2, no traceback.
EXPECTED_FAILURES: tuple[type[BaseException], ...] = (OSError, ValueError, LookupError,
                                                      TimeoutError, sqlite3.Error)


def main(argv: list[str] | None = None) -> int:
    """Run the ``aquasurf`` command ``argv`` (default: ``sys.argv[1:]``) and return its exit
    status: the handler's, or 2 with a one-line error on stderr for an
    :data:`EXPECTED_FAILURES` error. A bad command line exits through argparse
    (``SystemExit(2)``); other errors propagate with their traceback."""
    args = build_parser().parse_args(argv)
    command = " ".join(str(v) for k, v in vars(args).items()
                       if k == "command" or k.endswith("_command"))
    try:
        return int(args.func(args))
    except EXPECTED_FAILURES as err:
        return _error(command, f"{type(err).__name__}: {err}" if isinstance(err, OSError)
                      and not str(err) else err)


if __name__ == "__main__":
    sys.exit(main())
