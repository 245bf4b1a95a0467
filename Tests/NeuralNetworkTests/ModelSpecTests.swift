import Foundation
import NeuralNetwork
import Testing

@Suite("ModelSpec")
struct ModelSpecTests {
    @Test("a valid spec parses with every default filled in and no issue")
    func parsesValidSpec() throws {
        let (spec, issues) = try parseModel("""
            {"input_shape":[4],"layers":[{"type":"dense","units":8,"activation":"relu"},{"type":"dropout","rate":0.2},
             {"type":"activation","name":"tanh"},{"type":"dense","units":3,"bias":false}]}
            """)
        #expect(issues.isEmpty, "\(issues)")
        #expect(spec == ModelSpec(inputShape: [4], layers: [
            .dense(units: 8, activation: .relu, bias: true), .dropout(rate: 0.2), .activation(.tanh),
            .dense(units: 3, activation: .linear, bias: false),
        ]))
    }

    @Test("an unknown key is reported with its path")
    func unknownKey() throws {
        let (_, issues) = try parseModel("""
            {"input_shape":[4],"layers":[{"type":"dense","units":8},{"type":"dropout","rat":0.2}]}
            """)
        let issue = try #require(issues.first)
        #expect(issues.count == 1, "\(issues)")
        #expect(issue.path == "model.layers[1].rat")
        #expect(issue.message.contains("unknown key"))
        #expect(issue.message.contains("rate"), "the message names the keys that are allowed")
        #expect(issue.description.hasPrefix("model.layers[1].rat: "))
    }

    @Test("a dense layer without units is reported")
    func missingUnits() throws {
        let (_, issues) = try parseModel(#"{"layers":[{"type":"dense","activation":"relu"}]}"#)
        #expect(issues.map(\.path) == ["model.layers[0].units"])
        #expect(issues.first?.message.contains("required") == true)
    }

    @Test("zero units is out of range")
    func zeroUnits() throws {
        let (spec, issues) = try parseModel(#"{"layers":[{"type":"dense","units":0}]}"#)
        #expect(issues.map(\.path) == ["model.layers[0].units"])
        let message = try #require(issues.first?.message)
        #expect(message.contains("between 1 and"), "\(message)")
        #expect(message.contains("got 0"), "\(message)")
        _ = spec  // the reader goes on with a default; the caller rejects a spec that has issues
    }

    @Test("units that are not an integer are reported")
    func fractionalUnits() throws {
        let (_, issues) = try parseModel(#"{"layers":[{"type":"dense","units":2.5}]}"#)
        #expect(issues.map(\.path) == ["model.layers[0].units"])
        #expect(issues.first?.message.contains("integer") == true)
    }

    @Test("an unknown activation lists the choices")
    func unknownActivation() throws {
        let (_, issues) = try parseModel(#"{"layers":[{"type":"dense","units":2,"activation":"swish"}]}"#)
        #expect(issues.map(\.path) == ["model.layers[0].activation"])
        let message = try #require(issues.first?.message)
        #expect(message.contains("\"swish\""))
        for function in ActivationFunction.allCases {
            #expect(message.contains(function.rawValue), "\(function.rawValue) is listed")
        }
    }

    @Test("an activation layer names its function, checked against the same choices")
    func activationLayer() throws {
        #expect(try parseModel(#"{"layers":[{"type":"activation"}]}"#).issues.map(\.path) == ["model.layers[0].name"])
        #expect(try parseModel(#"{"layers":[{"type":"activation","name":"mish"}]}"#).issues.map(\.path) == ["model.layers[0].name"])
    }

    @Test("a convolution reads its sizes as one number or [height, width], and needs its filters")
    func convolutionSizes() throws {
        let (spec, issues) = try parseModel(#"{"layers":[{"type":"conv2d","filters":8,"kernel":[3,2],"stride":2,"padding":"same"}]}"#)
        #expect(issues.isEmpty)
        #expect(spec?.layers.first == .conv2d(filters: 8, kernel: Size2D(3, 2), stride: .square(2), padding: .same, groups: 1,
                                               bias: true, activation: .linear))
        let missing = try parseModel(#"{"layers":[{"type":"conv2d","kernel":[3,2,1],"padding":"full"}]}"#).issues.map(\.path)
        #expect(Set(missing) == ["model.layers[0].filters", "model.layers[0].kernel", "model.layers[0].padding"])
    }

    @Test("a preset expands to plain layers, ending in as many outputs as asked")
    func presetsExpandToLayers() throws {
        for preset in ModelPreset.allCases {
            let (spec, issues) = try parseModel(#"{"preset":"\#(preset.rawValue)","classes":7}"#)
            #expect(issues.isEmpty)
            #expect(spec?.layers.last == .dense(units: 7, activation: .linear, bias: true))
        }
        #expect(try parseModel(#"{"preset":"resnet"}"#).issues.map(\.path) == ["model.preset"])
    }

    @Test("shapes are checked layer by layer and a mismatch names both shapes")
    func shapeInference() throws {
        let (spec, _) = try parseModel(#"{"layers":[{"type":"conv2d","filters":4,"kernel":3,"padding":"same"},{"type":"max_pool2d"},{"type":"flatten"},{"type":"dense","units":3}]}"#)
        let diagnostics = SpecDiagnostics()
        let summaries = try #require(spec?.summarize(inputShape: [1, 8, 8], diagnostics: diagnostics))
        #expect(summaries.map(\.outputShape) == [[4, 8, 8], [4, 4, 4], [64], [3]])
        #expect(summaries.map(\.parameters) == [40, 0, 0, 195])
        #expect(spec?.summarize(inputShape: [64], diagnostics: diagnostics) == nil)
        #expect(diagnostics.issues.first?.path == "model.layers[0]")
        #expect(diagnostics.issues.first?.message.contains("[64]") == true)
    }

    @Test("an unknown layer type and a missing type are reported")
    func unknownLayerType() throws {
        let (_, issues) = try parseModel(#"{"layers":[{"type":"transformer"},{"units":3}]}"#)
        #expect(issues.map(\.path) == ["model.layers[0].type", "model.layers[1].type"])
        #expect(issues[0].message.contains("must be one of"))
        #expect(issues[1].message.contains("required"))
    }

    @Test("dropout rate must be at least 0 and below 1")
    func dropoutRate() throws {
        let (_, issues) = try parseModel(#"{"layers":[{"type":"dropout","rate":1}]}"#)
        #expect(issues.map(\.path) == ["model.layers[0].rate"])
        #expect(issues.first?.message.contains("< 1") == true)
    }

    @Test("several problems are reported at once")
    func severalProblems() throws {
        let (spec, issues) = try parseModel("""
            {"input_shape":[0],"depth":3,"layers":[{"type":"dense","units":0,"activation":"swish"},
             {"type":"conv2d"},{"type":"dropout","rat":0.5},{"type":"dense","units":2,"bias":"yes"}]}
            """)
        _ = spec  // a best-effort reading with defaults; the issues decide
        #expect(Set(issues.map(\.path)) == [
            "model.depth", "model.input_shape", "model.layers[0].units", "model.layers[0].activation",
            "model.layers[1].filters", "model.layers[2].rat", "model.layers[3].bias",
        ], "\(issues)")
        #expect(issues.count == 7)
    }

    @Test("a model without layers, with an empty list, or not an object is reported")
    func structure() throws {
        #expect(try parseModel(#"{"input_shape":[4]}"#).issues.map(\.path) == ["model.layers"])
        #expect(try parseModel(#"{"layers":[]}"#).issues.map(\.path) == ["model.layers"])
        #expect(try parseModel(#"{"layers":{"type":"dense"}}"#).issues.map(\.path) == ["model.layers"])
        #expect(try parseModel(#"[1, 2]"#).issues.map(\.path) == ["model"])
        #expect(try parseModel(#"{"layers":[3]}"#).issues.map(\.path) == ["model.layers[0]"])
    }

    @Test("an unknown preset is reported with the presets there are")
    func unknownPreset() throws {
        let (_, issues) = try parseModel(#"{"preset":"mobilenet"}"#)
        #expect(issues.map(\.path) == ["model.preset"])
        #expect(issues.first?.message.contains("mobilenet_v1") == true)
    }

    @Test("malformed JSON throws an issue at the root")
    func malformedJSON() {
        #expect(throws: SpecIssue.self) { try JSONValue.parse(Data("{\"layers\": [".utf8)) }
    }

    @Test("jsonValue round-trips through parse, also as JSON text",
          arguments: [
              ModelSpec(inputShape: [4], layers: [.dense(units: 8, activation: .relu, bias: true), .dropout(rate: 0.2),
                                                  .dense(units: 3, activation: .linear, bias: true)]),
              ModelSpec(inputShape: nil, layers: [.activation(.gelu), .dense(units: 1, activation: .leaky_relu, bias: false),
                                                  .dropout(rate: 0)]),
              ModelSpec(inputShape: [1, 28, 28], layers: ActivationFunction.allCases.map { .dense(units: 2, activation: $0, bias: true) }),
          ])
    func roundTrip(spec: ModelSpec) throws {
        let diagnostics = SpecDiagnostics()
        #expect(ModelSpec.parse(spec.jsonValue, path: "model", diagnostics: diagnostics) == spec)
        #expect(diagnostics.isEmpty, "\(diagnostics.issues)")

        let text = spec.jsonValue.encodedString()
        let (reparsed, issues) = try parseModel(text)
        #expect(reparsed == spec, "\(text)")
        #expect(issues.isEmpty)
        #expect(try JSONValue.parse(Data(text.utf8)) == spec.jsonValue)
    }
}

@Suite("JSONValue.parse")
struct JSONValueParseTests {
    @Test("a key given twice in one object is refused with its path, wherever it is")
    func duplicateKeys() {
        let cases: [(String, String)] = [
            (#"{"a": 1, "a": 2}"#, "a"),
            (#"{"optimizer": {"lr": 0.1, "type": "sgd", "lr": 0.2}}"#, "optimizer.lr"),
            (#"{"model": {"layers": [{"type": "dense"}, {"units": 3, "type": "x", "units": 4}]}}"#, "model.layers[1].units"),
            (#"{"a": "x\"y", "b": {"a": 1}, "a\"": 2, "c": [{"k": 1}, {"k": 2}], "c": 3}"#, "c"),
        ]
        for (text, path) in cases {
            #expect(throws: SpecIssue(path: path, message: "is given twice; give each key once")) { try JSONValue.parse(Data(text.utf8)) }
        }
    }

    @Test("the same key in different objects, and escaped quotes inside strings, are fine")
    func distinctKeys() throws {
        let value = try JSONValue.parse(Data(#"{"a": {"k": 1}, "b": {"k": 2}, "c": ["\"k\"", {"k": "a\\"}], "k": 3}"#.utf8))
        #expect(value["k"] == 3)
    }
}
