#!/usr/bin/python3
"""Loads the demo's checkpoint (out/mlp-bn.safetensors or out/cnn-bn.safetensors) into the equivalent PyTorch
module, strictly.

    python3 examples/fashion-mnist/load_in_pytorch.py CHECKPOINT [DATA_DIR]
        prints the eval-mode test accuracy on DATA_DIR (default: /usr/share/datasets/fashion-mnist)
    python3 examples/fashion-mnist/load_in_pytorch.py CHECKPOINT --logits < images.f32 > logits.f32
        eval-mode logits of n x 784 float32 images (used by test/demo.test.ts)
    python3 examples/fashion-mnist/load_in_pytorch.py --describe > test/fixtures/fashion-mnist-state-dicts.json
        the state_dict keys, shapes and dtypes, in PyTorch's order, of the demo's default networks with and without
        batch norm (test/demo.test.ts checks the demo's checkpoints against this file where torch is missing)

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


class LeNet(nn.Module):
    """d2l's LeNet with batch norm (chapter_convolutional-modern/batch-norm), examples/fashion-mnist/cnn.ts:
    conv -> bn -> sigmoid -> avgpool twice, then fc -> bn -> sigmoid twice, then fc3. Without batch norm the same
    without the bn layers."""

    def __init__(self, batch_norm, side=28, classes=10):
        super().__init__()
        self.side = side
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5)
        if batch_norm:
            self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        if batch_norm:
            self.bn2 = nn.BatchNorm2d(16)
        features = ((side - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(16 * features * features, 120)
        if batch_norm:
            self.bn3 = nn.BatchNorm1d(120)
        self.fc2 = nn.Linear(120, 84)
        if batch_norm:
            self.bn4 = nn.BatchNorm1d(84)
        self.fc3 = nn.Linear(84, classes)

    def forward(self, x):
        x = x.reshape(-1, 1, self.side, self.side)
        for conv, bn in ((self.conv1, 'bn1'), (self.conv2, 'bn2')):
            x = conv(x)
            if hasattr(self, bn):
                x = getattr(self, bn)(x)
            x = nn.functional.avg_pool2d(torch.sigmoid(x), 2)
        x = x.flatten(1)
        for fc, bn in ((self.fc1, 'bn3'), (self.fc2, 'bn4')):
            x = fc(x)
            if hasattr(self, bn):
                x = getattr(self, bn)(x)
            x = torch.sigmoid(x)
        return self.fc3(x)


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
    """Builds the network the state describes (LeNet when it has conv1, else the MLP, its sizes read off the fc
    weights) and loads the state strictly."""
    if 'conv1.weight' in state:
        side = 28  # the demo trains on Fashion-MNIST's 28 x 28 images
        model = LeNet(any(k.startswith('bn') for k in state), side, state['fc3.weight'].shape[0])
        model.load_state_dict(state, strict=True)
        return model.eval()
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


def describe():
    """The demo's default networks' state_dict layouts as JSON: {name: [[key, shape, dtype], ...]}."""
    networks = {
        'mlp-bn': MLP([784, 128, 64, 10], True), 'mlp': MLP([784, 128, 64, 10], False),
        'cnn-bn': LeNet(True), 'cnn': LeNet(False),
    }
    out = {name: [[k, list(v.shape), str(v.dtype).replace('torch.', '')] for k, v in net.state_dict().items()]
           for name, net in networks.items()}
    print('{\n "_generated_by": ' + json.dumps(f'examples/fashion-mnist/load_in_pytorch.py --describe, PyTorch {torch.__version__}') + ',')
    print(',\n'.join(f' "{name}": [\n' + ',\n'.join(f'  {json.dumps(e)}' for e in entries) + '\n ]' for name, entries in out.items()))
    print('}')


def main():
    if sys.argv[1] == '--describe':
        describe()
        return
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
