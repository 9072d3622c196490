"""Predict keypoints: kpdet infer CONFIG CHECKPOINT SOURCE --out DIR [--onnx model.onnx]

SOURCE is an image, a folder of images or a video file. Top-down without a detector:
each image (frame) is one instance whose box is the whole image, unless --boxes gives a
JSON {file_name or frame number: [[x, y, w, h], ...]} or one [[x, y, w, h], ...] for all.
Writes results.json (COCO results; image px, pixel centres at integers) and drawn images,
or for a video a drawn video, results.json, results.jsonl and a DeepLabCut-style CSV.
--onnx runs the network with onnxruntime (from `kpdet export`); decoding is unchanged.
"""
import argparse


def add_arguments(parser) -> None:
    parser.add_argument("config", help="YAML config or shipped config name (a run's config.yaml)")
    parser.add_argument("checkpoint")
    parser.add_argument("source", help="an image file, a folder of images or a video file")
    parser.add_argument("--out", default="work_dirs/infer", help="output folder")
    parser.add_argument("--boxes", help="JSON file: {file_name or frame number: [[x, y, w, h], ...]}")
    parser.add_argument("--onnx", help="run the network from this ONNX file with onnxruntime (CPU)")
    parser.add_argument("--flip-test", action=argparse.BooleanOptionalAction, default=None,
                        help="average with the flipped image (default: the config's eval.flip_test)")
    parser.add_argument("--max-frames", type=int, help="stop a video after this many frames")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides")


def run(args) -> None:
    from kpdet.config import load_config
    from kpdet.engine.infer import infer

    cfg = load_config(args.config, args.overrides)
    done = infer(cfg, args.checkpoint, args.source, args.out, args.boxes, args.onnx, args.flip_test,
                 args.max_frames)
    print(f"{done} images/frames -> {args.out}/results.json")
