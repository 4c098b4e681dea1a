#!/usr/bin/python3
"""Loads the demo's checkpoint (out/mlp-bn.safetensors) into the equivalent PyTorch module, strictly.

    python3 examples/fashion-mnist/load_in_pytorch.py CHECKPOINT [DATA_DIR]
        prints the eval-mode test accuracy on DATA_DIR (default: /usr/share/datasets/fashion-mnist)
    python3 examples/fashion-mnist/load_in_pytorch.py CHECKPOINT --logits < images.f32 > logits.f32
        eval-mode logits of n x 784 float32 images (used by test/demo.test.ts)

Needs torch and numpy. Uses `safetensors.torch.load_file` when the safetensors package is installed, else the
few lines below (Debian packages no python3-safetensors).
"""
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
from torch import nn


class MLP(nn.Module):
    """The network of examples/fashion-mnist/model.ts: fc_i -> bn_i -> ReLU per hidden layer, then fc_last."""

    def __init__(self, sizes, batch_norm):
        super().__init__()
        self.hidden = len(sizes) - 2
        for i in range(1, len(sizes)):
            setattr(self, f'fc{i}', nn.Linear(sizes[i - 1], sizes[i]))
            if batch_norm and i < len(sizes) - 1:
                setattr(self, f'bn{i}', nn.BatchNorm1d(sizes[i]))

    def forward(self, x):
        for i in range(1, self.hidden + 1):
            x = getattr(self, f'fc{i}')(x)
            if hasattr(self, f'bn{i}'):
                x = getattr(self, f'bn{i}')(x)
            x = torch.relu(x)
        return getattr(self, f'fc{self.hidden + 1}')(x)


def load_safetensors(path):
    try:
        from safetensors.torch import load_file
        return load_file(path)
    except ImportError:
        pass
    dtypes = {'F32': np.float32, 'F64': np.float64, 'I64': np.int64}
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop('__metadata__', None)
    data = raw[8 + n:]
    out = {}
    for name, t in header.items():
        begin, end = t['data_offsets']
        out[name] = torch.from_numpy(np.frombuffer(data[begin:end], dtype=dtypes[t['dtype']]).reshape(t['shape']).copy())
    return out


def model_from(state):
    """Reads the layer sizes off the fc weights, builds the MLP and loads the state strictly."""
    fcs = sorted((int(k[2:-7]), v.shape) for k, v in state.items() if k.startswith('fc') and k.endswith('.weight'))
    sizes = [fcs[0][1][1]] + [shape[0] for _, shape in fcs]
    model = MLP(sizes, any(k.startswith('bn') for k in state))
    model.load_state_dict(state, strict=True)
    return model.eval()


def read_idx(path):
    with open(path, 'rb') as f:
        raw = f.read()
    if raw[:2] == b'\x1f\x8b':
        raw = gzip.decompress(raw)
    rank = raw[3]
    dims = struct.unpack(f'>{rank}I', raw[4:4 + 4 * rank])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def idx_path(folder, name):
    gz = os.path.join(folder, name + '.gz')
    return gz if os.path.exists(gz) else os.path.join(folder, name)


def main():
    model = model_from(load_safetensors(sys.argv[1]))
    with torch.no_grad():
        if len(sys.argv) > 2 and sys.argv[2] == '--logits':
            x = np.frombuffer(sys.stdin.buffer.read(), dtype=np.float32).reshape(-1, 784)
            sys.stdout.buffer.write(model(torch.from_numpy(x.copy())).numpy().astype(np.float32).tobytes())
            return
        folder = sys.argv[2] if len(sys.argv) > 2 else '/usr/share/datasets/fashion-mnist'
        images = read_idx(idx_path(folder, 't10k-images-idx3-ubyte'))
        labels = read_idx(idx_path(folder, 't10k-labels-idx1-ubyte'))
        x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255)
        accuracy = (model(x).argmax(1).numpy() == labels).mean()
        print(f'PyTorch {torch.__version__}: loaded {sys.argv[1]} strictly; test accuracy {accuracy:.4f} on {len(labels)} images')


if __name__ == '__main__':
    main()
