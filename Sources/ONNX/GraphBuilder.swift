import Foundation

/// Builds one ONNX graph: nodes appended in topological order (every input is a graph input, an
/// initializer or the output of an earlier node), initializers, and unique value names.
///
/// Values are named after what they hold, so a user reading the graph (Netron, `onnx.helper`) finds the
/// saved model's names: initializers are the safetensors tensor names (`layers.0.weight`), node outputs
/// `layers.<i>/<what>`.
struct GraphBuilder {
    private(set) var nodes: [Onnx_NodeProto] = []
    private(set) var initializers: [Onnx_TensorProto] = []
    private var names: Set<String> = []
    /// Bytes of initializer data so far (the protobuf file cannot exceed 2 GiB).
    private(set) var initializerBytes = 0

    /// `base`, or `base_2`, `base_3`… if taken.
    mutating func uniqueName(_ base: String) -> String {
        var name = base
        var counter = 2
        while names.contains(name) {
            name = "\(base)_\(counter)"
            counter += 1
        }
        names.insert(name)
        return name
    }

    /// Appends a node and returns its output names (`outputs` of them, named after `name`). An empty
    /// string among `inputs` skips an optional input.
    @discardableResult
    mutating func node(_ opType: String, _ inputs: [String], _ attributes: [Onnx_AttributeProto] = [],
                       name: String, outputs: Int = 1) -> [String] {
        var node = Onnx_NodeProto()
        node.opType = opType
        node.name = uniqueName("\(name)#\(opType)")
        node.input = inputs
        let outputNames = (0..<outputs).map { uniqueName(outputs == 1 ? name : "\(name):\($0)") }
        node.output = outputNames
        node.attribute = attributes
        nodes.append(node)
        return outputNames
    }

    /// A node with one output.
    mutating func op(_ opType: String, _ inputs: [String], _ attributes: [Onnx_AttributeProto] = [], name: String) -> String {
        node(opType, inputs, attributes, name: name)[0]
    }

    /// A node whose single output gets exactly `output` (a graph output's name).
    mutating func op(_ opType: String, _ inputs: [String], _ attributes: [Onnx_AttributeProto] = [], output: String) {
        var node = Onnx_NodeProto()
        node.opType = opType
        node.name = uniqueName("\(output)#\(opType)")
        node.input = inputs
        precondition(!names.contains(output), "the value name \(output) is taken")
        names.insert(output)
        node.output = [output]
        node.attribute = attributes
        nodes.append(node)
    }

    // MARK: Initializers

    mutating func floats(_ values: [Float], shape: [Int], name: String) -> String {
        precondition(values.count == shape.reduce(1, *), "\(name): \(values.count) values for shape \(shape)")
        return add(tensor(.float, shape: shape, name: name, raw: littleEndianBytes(values)))
    }

    mutating func float(_ value: Float, name: String) -> String { floats([value], shape: [], name: name) }

    mutating func int64s(_ values: [Int], shape: [Int]? = nil, name: String) -> String {
        add(tensor(.int64, shape: shape ?? [values.count], name: name, raw: littleEndianBytes(values.map(Int64.init))))
    }

    mutating func int8s(_ values: [Int8], shape: [Int], name: String) -> String {
        precondition(values.count == shape.reduce(1, *), "\(name): \(values.count) values for shape \(shape)")
        return add(tensor(.int8, shape: shape, name: name, raw: values.withUnsafeBytes { Data($0) }))
    }

    mutating func uint8s(_ values: [UInt8], shape: [Int], name: String) -> String {
        precondition(values.count == shape.reduce(1, *), "\(name): \(values.count) values for shape \(shape)")
        return add(tensor(.uint8, shape: shape, name: name, raw: Data(values)))
    }

    private mutating func add(_ tensor: Onnx_TensorProto) -> String {
        initializers.append(tensor)
        initializerBytes += tensor.rawData.count
        return tensor.name
    }

    private mutating func tensor(_ type: Onnx_TensorProto.DataType, shape: [Int], name: String, raw: Data) -> Onnx_TensorProto {
        var tensor = Onnx_TensorProto()
        tensor.name = uniqueName(name)
        tensor.dataType = Int32(type.rawValue)
        tensor.dims = shape.map(Int64.init)
        tensor.rawData = raw
        return tensor
    }
}

/// ONNX's `raw_data` is little-endian whatever the host.
private func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> Data {
    #if _endian(little)
    return values.withUnsafeBytes { Data($0) }
    #else
    return values.map(\.littleEndian).withUnsafeBytes { Data($0) }
    #endif
}

private func littleEndianBytes(_ values: [Float]) -> Data {
    #if _endian(little)
    return values.withUnsafeBytes { Data($0) }
    #else
    return littleEndianBytes(values.map(\.bitPattern))
    #endif
}

// MARK: Attributes

extension Onnx_AttributeProto {
    static func int(_ name: String, _ value: Int) -> Self {
        var attribute = Self()
        attribute.name = name
        attribute.type = .int
        attribute.i = Int64(value)
        return attribute
    }

    static func ints(_ name: String, _ values: [Int]) -> Self {
        var attribute = Self()
        attribute.name = name
        attribute.type = .ints
        attribute.ints = values.map(Int64.init)
        return attribute
    }

    static func float(_ name: String, _ value: Float) -> Self {
        var attribute = Self()
        attribute.name = name
        attribute.type = .float
        attribute.f = value
        return attribute
    }
}

// MARK: Value types

extension Onnx_ValueInfoProto {
    /// A float32 tensor whose first dimension is the batch (`N`) and the rest `shape`.
    static func batchOfFloats(_ name: String, shape: [Int]) -> Self {
        var batch = Onnx_TensorShapeProto.Dimension()
        batch.dimParam = "N"
        var dimensions = [batch]
        for size in shape {
            var dimension = Onnx_TensorShapeProto.Dimension()
            dimension.dimValue = Int64(size)
            dimensions.append(dimension)
        }
        var tensorShape = Onnx_TensorShapeProto()
        tensorShape.dim = dimensions
        var tensorType = Onnx_TypeProto.Tensor()
        tensorType.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        tensorType.shape = tensorShape
        var value = Self()
        value.name = name
        value.type.tensorType = tensorType
        return value
    }
}
