"""Export a checkpoint's network to ONNX: kpdet export CHECKPOINT --out model.onnx

The network alone (images [B, 3, H, W] -> logits, dynamic batch axis); activation, flip
test and decoding stay in kpdet, so `kpdet infer ... --onnx model.onnx` gives the same
keypoints. After writing, the file is checked with onnxruntime (CPU) against PyTorch on
real crops (the config's val boxes, or --images); a heatmap difference above --tolerance
is an error. Needs the `export` extra: pip install "kpdet[export]".
"""
import sys


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint")
    parser.add_argument("--out", default="model.onnx", help="the ONNX file to write")
    parser.add_argument("--config", help="a config overriding the one saved in the checkpoint")
    parser.add_argument("--images", help="an image or folder whose whole images are the check's crops")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed heatmap difference")


def run(args) -> None:
    from kpdet.engine.export import export

    try:
        export(args.checkpoint, args.out, args.config, args.images, args.tolerance)
    except RuntimeError as error:
        sys.exit(f"error: {error}")
