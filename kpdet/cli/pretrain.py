"""Pretrain a trunk on the embedded synthetic set: kpdet pretrain [--backbone resnet18] [--epochs 5]

Trains the synthetic pose task (`--base`, synthetic/focal as shipped) from scratch and caches the
trunk, which any config then uses with one line: model.pretrained=synthetic (or synthetic:<epochs>,
or synthetic:<epochs>:<images>).
An existing trunk is reused. Runs that ask for a missing trunk build it themselves; under torchrun,
build it first with this command.
"""


def add_arguments(parser) -> None:
    parser.add_argument("--backbone", default="resnet18", help="model.backbone of the configs using it")
    parser.add_argument("--epochs", type=int, default=None, help="pretraining budget (default 5)")
    parser.add_argument("--images", type=int, default=None,
                        help="training images generated for it (default 2000: the shipped synthetic set)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base", default="synthetic/focal", help="the synthetic config to pretrain with")
    parser.add_argument("--cache", help="cache folder (default: $KPDET_CACHE or ~/.cache/kpdet)")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides of the pretraining run")


def run(args) -> None:
    from kpdet.engine.pretrain import DEFAULT_EPOCHS, DEFAULT_IMAGES, cache_root, pretrain

    epochs, images = args.epochs or DEFAULT_EPOCHS, args.images or DEFAULT_IMAGES
    cache = cache_root(args.cache)
    path = pretrain(args.backbone, epochs, cache, args.seed, args.base, tuple(args.overrides), images)
    suffix = "" if args.epochs is None and args.images is None else f":{epochs}"
    suffix += "" if args.images is None else f":{images}"
    print(f"{path}\nuse it with model.pretrained=synthetic{suffix}"
          + (f" model.pretrained_cache={args.cache}" if args.cache else ""))
