#!/usr/bin/env python3
"""Checks ONNX files and runs them in onnxruntime: what the ONNX export tests compare with /predict.

    python scripts/onnx_run.py MODEL.onnx < request.json     one model; request.json is a /predict body
    python scripts/onnx_run.py --batch < runs.json           several: {"runs": [{"model": PATH, "inputs": …}, …]}

"inputs" holds one flat list of values per sample, as /predict takes them. Each model is first checked with
onnx.checker.check_model(full_check=True) (a model it refuses exits non-zero with its message), then run twice:
with onnxruntime's default graph optimizations (what users get) and with none.

Prints, per model (the batch form: {"runs": [...]} in order), one JSON object: "outputs" (each graph output by
name, one flat list per sample; default optimizations), "unoptimized_outputs" (the same without optimizations),
"output_names", "input_shape" (the graph input's per-sample shape), "ops" (operator types used),
"initializer_types" (element type -> count), "initializers" (name -> {"type", "count", "zeros"}), "opset",
"ir_version" and "metadata" (the model's metadata_props).
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


def outputs(path: str, feed: dict, optimized: bool) -> tuple:
    options = ort.SessionOptions()
    if not optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    results = session.run(names, feed)
    return names, {name: value.reshape(value.shape[0], -1).astype(float).tolist() for name, value in zip(names, results)}


def run(path: str, rows: list) -> dict:
    onnx.checker.check_model(path, full_check=True)
    model = onnx.load(path)
    graph_input = model.graph.input[0]
    sample_shape = [d.dim_value for d in graph_input.type.tensor_type.shape.dim[1:]]
    feed = {graph_input.name: np.asarray(rows, dtype=np.float32).reshape([-1] + sample_shape)}
    names, optimized = outputs(path, feed, optimized=True)
    _, unoptimized = outputs(path, feed, optimized=False)
    initializer_types = collections.Counter(
        onnx.TensorProto.DataType.Name(tensor.data_type) for tensor in model.graph.initializer)
    return {
        "outputs": optimized,
        "unoptimized_outputs": unoptimized,
        "output_names": names,
        "input_shape": sample_shape,
        "ops": sorted({node.op_type for node in model.graph.node}),
        "initializer_types": dict(initializer_types),
        "initializers": {tensor.name: describe(tensor) for tensor in model.graph.initializer},
        "opset": [opset.version for opset in model.opset_import if opset.domain in ("", "ai.onnx")][0],
        "ir_version": model.ir_version,
        "metadata": {entry.key: entry.value for entry in model.metadata_props},
    }


def main() -> None:
    request = json.load(sys.stdin)
    if sys.argv[1] == "--batch":
        json.dump({"runs": [run(item["model"], item["inputs"]) for item in request["runs"]]}, sys.stdout)
    else:
        json.dump(run(sys.argv[1], request["inputs"]), sys.stdout)


if __name__ == "__main__":
    main()
