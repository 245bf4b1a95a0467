import Compression
import NeuralNetwork

/// How a saved model is quantized: the weight grid (bits, scheme, granularity) and the 8-bit grid of
/// the activations entering each dense/conv2d layer, by layer index. Kept in the file's
/// `quantization` metadata so loading rebuilds the same inference.
public struct ModelQuantization: Sendable, Equatable {
    public var weights: WeightQuantization
    public var activationGrids: [Int: QuantizationParameters]
    /// The integer codes of each quantized weight, by tensor name: the file stores exactly these.
    /// (Re-encoding the rounded floats would observe a slightly different range, so a new grid.)
    public var codes: [String: QuantizedTensor]

    public init(weights: WeightQuantization, activationGrids: [Int: QuantizationParameters], codes: [String: QuantizedTensor] = [:]) {
        self.weights = weights
        self.activationGrids = activationGrids
        self.codes = codes
    }

    /// Quantizes every weight of `network` onto its grid in place and keeps the codes.
    public static func quantizing(_ network: Network, weights: WeightQuantization,
                                  activationGrids: [Int: QuantizationParameters]) -> ModelQuantization {
        var codes: [String: QuantizedTensor] = [:]
        for (name, parameter) in WeightQuantization.quantizableParameters(of: network) {
            let encoded = weights.encode(parameter)
            _ = parameter.value.values.update(fromContentsOf: encoded.dequantized())
            codes[name] = encoded
        }
        return ModelQuantization(weights: weights, activationGrids: activationGrids, codes: codes)
    }

    func jsonValue(shapes network: Network) -> JSONValue {
        let activations = activationGrids.map { index, grid in
            ("\(index)", JSONValue.object(["scale": JSONValue(Double(grid.scales[0])), "zero_point": JSONValue(Int(grid.zeroPoints[0])),
                                           "quant_min": JSONValue(Int(grid.quantMin)), "quant_max": JSONValue(Int(grid.quantMax))]))
        }
        let weightShapes = WeightQuantization.quantizableParameters(of: network).map { ($0.name, JSONValue($0.parameter.shape)) }
        return ["bits": JSONValue(weights.bits), "scheme": JSONValue(weights.scheme.rawValue),
                "granularity": JSONValue(weights.granularity.rawValue),
                "weights": .object(Dictionary(uniqueKeysWithValues: weightShapes)),
                "activations": .object(Dictionary(uniqueKeysWithValues: activations))]
    }

    static func parse(_ json: JSONValue) throws -> ModelQuantization {
        func fail(_ message: String) -> TrainedModel.LoadError { .invalid("metadata quantization: \(message)") }
        guard case .object(let fields) = json, case .number(let bits)? = fields["bits"], [8, 4, 2, 1].contains(Int(bits)),
              case .string(let schemeName)? = fields["scheme"], let scheme = QuantizationScheme(rawValue: schemeName),
              case .string(let granularityName)? = fields["granularity"], let granularity = QuantizationGranularity(rawValue: granularityName)
        else { throw fail("needs bits 8/4/2/1, scheme and granularity") }
        var grids: [Int: QuantizationParameters] = [:]
        if case .object(let activations)? = fields["activations"] {
            for (key, value) in activations {
                guard let index = Int(key), case .object(let grid) = value, case .number(let scale)? = grid["scale"],
                      case .number(let zeroPoint)? = grid["zero_point"], case .number(let low)? = grid["quant_min"],
                      case .number(let high)? = grid["quant_max"]
                else { throw fail("activation grid \(key) is malformed") }
                grids[index] = QuantizationParameters(bits: ActivationFakeQuantizer.bits, scheme: .affine, quantMin: Int32(low),
                                                      quantMax: Int32(high), scales: [Float(scale)], zeroPoints: [Int32(zeroPoint)])
            }
        }
        return ModelQuantization(weights: WeightQuantization(bits: Int(bits), scheme: scheme, granularity: granularity), activationGrids: grids)
    }
}
