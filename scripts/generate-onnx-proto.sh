#!/usr/bin/env bash
# Regenerates Sources/ONNX/onnx.pb.swift, the Swift types of ONNX's protobuf schema. Run it only to move to a
# newer schema: the generated file is committed, and the build needs just the SwiftProtobuf runtime.
#
# The committed file was made with: onnx 1.23.2's onnx.proto (from its PyPI wheel), protoc 3.21.12
# (Debian's protobuf-compiler) and protoc-gen-swift 1.39.0 (apple/swift-protobuf at tag 1.39.0, the
# runtime version Package.swift asks for), with internal visibility: only the ONNX module builds messages.
#
# Needs: protoc on PATH (apt-get install protobuf-compiler), python3 with venv, a Swift toolchain, git.
set -euo pipefail
cd "$(dirname "$0")/.."
ONNX_VERSION=${ONNX_VERSION:-1.23.2}
SWIFT_PROTOBUF_VERSION=${SWIFT_PROTOBUF_VERSION:-1.39.0}
SWIFT_PROTOBUF_REPO=${SWIFT_PROTOBUF_REPO:-https://github.com/apple/swift-protobuf.git}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# onnx.proto as the onnx package ships it.
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "onnx==$ONNX_VERSION"
proto=$("$work/venv/bin/python" -c 'import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), "onnx.proto"))')
cp "$proto" "$work/onnx.proto"

# protoc-gen-swift from the same swift-protobuf release as the runtime.
git clone --quiet --branch "$SWIFT_PROTOBUF_VERSION" --depth 1 "$SWIFT_PROTOBUF_REPO" "$work/swift-protobuf"
(cd "$work/swift-protobuf" && swift build -c release --product protoc-gen-swift)

(cd "$work" && protoc --plugin=protoc-gen-swift="$work/swift-protobuf/.build/release/protoc-gen-swift" \
    --swift_out=. --swift_opt=Visibility=Internal onnx.proto)
cp "$work/onnx.pb.swift" Sources/ONNX/onnx.pb.swift
echo "wrote Sources/ONNX/onnx.pb.swift from onnx $ONNX_VERSION, protoc $(protoc --version | cut -d' ' -f2), protoc-gen-swift $SWIFT_PROTOBUF_VERSION"
