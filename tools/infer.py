"""Predict keypoints on images: python tools/infer.py CONFIG CHECKPOINT IMAGE_OR_DIR [--out DIR]

Top-down without a detector: each image is one instance whose box is the whole
image (landmark mode), unless --boxes gives a JSON {file_name: [[x, y, w, h], ...]}.
Writes predictions.json (image px, pixel centres at integers) and drawn images to --out.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kpdet.config import load_config  # noqa: E402
from kpdet.engine.infer import infer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("checkpoint")
    parser.add_argument("images", help="an image file or a folder of images")
    parser.add_argument("--out", default="work_dirs/infer", help="output folder")
    parser.add_argument("--boxes", help="JSON file: {file_name: [[x, y, w, h], ...]}")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    args = parser.parse_intermixed_args()
    cfg = load_config(args.config, args.overrides)
    written = infer(cfg, args.checkpoint, args.images, args.out, args.boxes)
    print(f"{written} images -> {args.out}/predictions.json")


if __name__ == "__main__":
    main()
