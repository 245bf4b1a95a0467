#!/usr/bin/env python3
"""Checks an ONNX file and runs it in onnxruntime: what the ONNX export tests compare with /predict.

    python scripts/onnx_run.py MODEL.onnx < request.json

request.json: {"inputs": [[...], ...]} — one flat list of values per sample, as /predict takes them — and
optionally "optimization": "all" (onnxruntime's default, what users get) or "disabled".

Prints one JSON object: "outputs" (each graph output by name, one flat list per sample), "output_names",
"input_shape" (the graph input's per-sample shape), "ops" (operator types used), "initializer_types"
(element type -> count), "initializers" (name -> {"type", "count", "zeros"}), "opset", "ir_version" and "metadata" (the model's metadata_props).
onnx.checker.check_model(full_check=True) runs first; a model it refuses exits non-zero with its message.
Needs the `onnx` and `onnxruntime` packages (the tests install them into .build/python-tools).
"""
import collections
import json
import sys

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort


def describe(tensor: onnx.TensorProto) -> dict:
    values = onnx.numpy_helper.to_array(tensor)
    return {"type": onnx.TensorProto.DataType.Name(tensor.data_type), "count": int(values.size),
            "zeros": int(np.count_nonzero(values == 0))}


def main() -> None:
    path = sys.argv[1]
    request = json.load(sys.stdin)
    onnx.checker.check_model(path, full_check=True)
    model = onnx.load(path)

    graph_input = model.graph.input[0]
    sample_shape = [d.dim_value for d in graph_input.type.tensor_type.shape.dim[1:]]
    inputs = np.asarray(request["inputs"], dtype=np.float32).reshape([-1] + sample_shape)

    options = ort.SessionOptions()
    if request.get("optimization", "all") == "disabled":
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    results = session.run(names, {graph_input.name: inputs})

    initializer_types = collections.Counter(
        onnx.TensorProto.DataType.Name(tensor.data_type) for tensor in model.graph.initializer)
    json.dump({
        "outputs": {name: value.reshape(value.shape[0], -1).astype(float).tolist() for name, value in zip(names, results)},
        "output_names": names,
        "input_shape": sample_shape,
        "ops": sorted({node.op_type for node in model.graph.node}),
        "initializer_types": dict(initializer_types),
        "initializers": {tensor.name: describe(tensor) for tensor in model.graph.initializer},
        "opset": [opset.version for opset in model.opset_import if opset.domain in ("", "ai.onnx")][0],
        "ir_version": model.ir_version,
        "metadata": {entry.key: entry.value for entry in model.metadata_props},
    }, sys.stdout)


if __name__ == "__main__":
    main()
