"""Write the embedded synthetic COCO-keypoints dataset.

    kpdet make-synthetic --out data/synthetic --num-train 2000 --num-val 200 --seed 0

(The synthetic configs generate it by themselves when it is missing.)
"""


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="data/synthetic", help="dataset root (JSON files + images/)")
    parser.add_argument("--num-train", type=int, default=2000)
    parser.add_argument("--num-val", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: up to 2)")
    parser.add_argument("--away-fraction", type=float, default=0.05, help="share of figures facing away")
    parser.add_argument("--if-missing", action="store_true", help="do nothing when the JSON files exist")


def run(args) -> None:
    from kpdet.data.synthetic import ensure_synthetic, generate_synthetic

    kwargs = dict(num_train=args.num_train, num_val=args.num_val, seed=args.seed, workers=args.workers,
                  away_fraction=args.away_fraction)
    info = ensure_synthetic(args.out, **kwargs) if args.if_missing else generate_synthetic(args.out, **kwargs)
    if info.get("generated", True):
        print(f"wrote {info['num_images']} images, {info['num_instances']} instances "
              f"to {info['root']} in {info['seconds']:.1f} s")
    else:
        print(f"{info['root']} already holds train.json and val.json; nothing to do")
    print(f"data.train.ann_file={info['train_ann']} data.val.ann_file={info['val_ann']} "
          f"data.train.img_dir={info['img_dir']} data.val.img_dir={info['img_dir']}")
