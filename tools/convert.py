"""Dataset converters.

python tools/convert.py dlc2coco CSV --img-dir DIR --out JSON [--category NAME] [--skeleton a-b,b-c]
python tools/convert.py pts2coco DIR --out JSON [--category NAME]
python tools/convert.py coco2dlc JSON --out CSV [--results RESULTS_JSON] [--scorer NAME]
python tools/convert.py coco2pts JSON --out DIR
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kpdet.data import convert  # noqa: E402
from kpdet.data.coco import read_json  # noqa: E402
from kpdet.errors import run_cli  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    sub = parser.add_subparsers(dest="command", required=True)
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
        p.add_argument("--debug", action="store_true", help="tracebacks for errors (or KPDET_DEBUG=1)")
    return parser


def main() -> None:
    args = _parser().parse_args()
    if args.command == "dlc2coco":
        skeleton = [pair.split("-") for pair in args.skeleton.split(",") if pair]
        data = convert.dlc_to_coco(args.csv, args.img_dir, args.category, skeleton)
    elif args.command == "pts2coco":
        data = convert.pts_to_coco(args.dir, args.category)
    elif args.command == "coco2dlc":
        results = json.loads(Path(args.results).read_text()) if args.results else None
        convert.coco_to_dlc(read_json(args.json), args.out, results, args.scorer)
        return print(f"wrote {args.out}")
    else:
        return print(f"wrote {len(convert.coco_to_pts(read_json(args.json), args.out))} .pts files")
    Path(args.out).write_text(json.dumps(data, indent=1))
    print(f"wrote {args.out}: {len(data['images'])} images, {len(data['annotations'])} annotations")


if __name__ == "__main__":
    run_cli(main, debug="--debug" in sys.argv[1:])
