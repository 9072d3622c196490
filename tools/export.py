"""Export a checkpoint's network to ONNX: python tools/export.py CHECKPOINT --out model.onnx

The network alone (images [B, 3, H, W] -> logits, dynamic batch axis); activation, flip
test and decoding stay in kpdet, so `tools/infer.py ... --onnx model.onnx` gives the same
keypoints. After writing, the file is checked with onnxruntime (CPU) against PyTorch on
real crops (the config's val boxes, or --images); a heatmap difference above --tolerance
is an error.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kpdet.engine.export import export  # noqa: E402
from kpdet.errors import run_cli  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="tracebacks for errors (or KPDET_DEBUG=1)")
    parser.add_argument("checkpoint")
    parser.add_argument("--out", default="model.onnx", help="the ONNX file to write")
    parser.add_argument("--config", help="a config overriding the one saved in the checkpoint")
    parser.add_argument("--images", help="an image or folder whose whole images are the check's crops")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed heatmap difference")
    args = parser.parse_args()
    try:
        export(args.checkpoint, args.out, args.config, args.images, args.tolerance)
    except RuntimeError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    run_cli(main, debug="--debug" in sys.argv[1:])
