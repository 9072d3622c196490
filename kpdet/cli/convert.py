"""Dataset converters.

kpdet convert dlc2coco CSV --img-dir DIR --out JSON [--category NAME] [--skeleton a-b,b-c]
kpdet convert pts2coco DIR --out JSON [--category NAME]
kpdet convert coco2dlc JSON --out CSV [--results RESULTS_JSON] [--scorer NAME]
kpdet convert coco2pts JSON --out DIR
"""
import json
import sys
from pathlib import Path

SUBCOMMANDS = True  # dlc2coco, pts2coco, ...: parsed with parse_args, not intermixed


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="format", required=True)
    dlc = sub.add_parser("dlc2coco", help="DeepLabCut CollectedData_*.csv -> COCO keypoints JSON")
    dlc.add_argument("csv")
    dlc.add_argument("--img-dir", required=True, help="folder of the CSV's images (full path or base name)")
    dlc.add_argument("--category", default="animal")
    dlc.add_argument("--skeleton", default="", help="body-part pairs, e.g. snout-leftear,snout-rightear")
    pts = sub.add_parser("pts2coco", help="iBUG/300W .pts files (+ images beside them) -> COCO JSON")
    pts.add_argument("dir")
    pts.add_argument("--category", default="face")
    back = sub.add_parser("coco2dlc", help="COCO ground truth or results -> DeepLabCut-style CSV")
    back.add_argument("json")
    back.add_argument("--results", help="COCO keypoint results JSON (predictions with scores)")
    back.add_argument("--scorer", default="kpdet")
    topts = sub.add_parser("coco2pts", help="COCO JSON -> one .pts per image")
    topts.add_argument("json")
    for p in (dlc, pts, back, topts):
        p.add_argument("--out", required=True)


def run(args) -> None:
    from kpdet.data import convert
    from kpdet.data.coco import DatasetError, read_json

    try:
        if args.format == "dlc2coco":
            skeleton = [pair.split("-") for pair in args.skeleton.split(",") if pair]
            data = convert.dlc_to_coco(args.csv, args.img_dir, args.category, skeleton)
        elif args.format == "pts2coco":
            data = convert.pts_to_coco(args.dir, args.category)
        elif args.format == "coco2dlc":
            results = json.loads(Path(args.results).read_text()) if args.results else None
            convert.coco_to_dlc(read_json(args.json), args.out, results, args.scorer)
            return print(f"wrote {args.out}")
        else:
            return print(f"wrote {len(convert.coco_to_pts(read_json(args.json), args.out))} .pts files")
    except DatasetError as error:
        sys.exit(f"error: {error}")
    Path(args.out).write_text(json.dumps(data, indent=1))
    print(f"wrote {args.out}: {len(data['images'])} images, {len(data['annotations'])} annotations")
