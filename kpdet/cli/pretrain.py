"""Pretrain a trunk on the embedded synthetic set: kpdet pretrain [--backbone resnet18] [--epochs 1]

Trains the synthetic pose task (`--base`, synthetic/focal as shipped) from scratch and caches the
trunk, which any config then uses with one line: model.pretrained=synthetic (or synthetic:<epochs>).
An existing trunk is reused. Runs that ask for a missing trunk build it themselves; under torchrun,
build it first with this command.
"""


def add_arguments(parser) -> None:
    parser.add_argument("--backbone", default="resnet18", help="model.backbone of the configs using it")
    parser.add_argument("--epochs", type=int, default=None, help="pretraining budget (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base", default="synthetic/focal", help="the synthetic config to pretrain with")
    parser.add_argument("--cache", help="cache folder (default: $KPDET_CACHE or ~/.cache/kpdet)")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides of the pretraining run")


def run(args) -> None:
    from kpdet.engine.pretrain import DEFAULT_EPOCHS, cache_root, pretrain

    epochs = args.epochs or DEFAULT_EPOCHS
    cache = cache_root(args.cache)
    path = pretrain(args.backbone, epochs, cache, args.seed, args.base, tuple(args.overrides))
    suffix = "" if args.epochs is None else f":{epochs}"
    print(f"{path}\nuse it with model.pretrained=synthetic{suffix}"
          + (f" model.pretrained_cache={args.cache}" if args.cache else ""))
