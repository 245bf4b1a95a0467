import Datasets
import Foundation
import NeuralNetwork
import Tensors
import Testing
@testable import Training

/// A small spirals model (standardized inputs, dropout, 3 classes) and its raw data.
func trainedSpirals(standardize: Bool = true) throws -> (model: TrainedModel, dataset: TabularDataset) {
    let text = """
    {"dataset": {"builtin": "spirals", "samples": 600, "classes": 3, "seed": 5},
     "preprocessing": {"standardize": \(standardize)},
     "model": {"layers": [{"type": "dense", "units": 16, "activation": "tanh"}, {"type": "dropout", "rate": 0.1},
                          {"type": "dense", "units": 3}]},
     "optimizer": {"type": "adam", "lr": 0.02}, "training": {"epochs": 5, "batch_size": 32, "seed": 1}}
    """
    let spec = try JobSpec.parse(json(text))
    let dataset = builtinData(of: spec)
    return (try train(text, on: dataset).1.model, dataset)
}

/// The first `count` rows of a dataset's raw features, as a client would send them.
func rawRows(_ dataset: TabularDataset, count: Int) -> [[Double]] {
    (0..<count).map { row in (0..<dataset.featureCount).map { Double(dataset.features[row * dataset.featureCount + $0]) } }
}

/// The error `predict` throws for `inputs`, or nil.
func inputError(_ model: TrainedModel, _ inputs: [[Double]]) -> TrainedModel.InputError? {
    do {
        _ = try model.predict(inputs)
        return nil
    } catch {
        return error
    }
}

@Suite("TrainedModel")
struct TrainedModelTests {
    // MARK: Saving and loading

    @Test func aSavedModelLoadsBackAndPredictsTheSame() throws {
        let (model, dataset) = try trainedSpirals()
        let bytes = model.safetensors()
        let loaded = try TrainedModel.load(bytes)
        #expect(loaded.network.spec == model.network.spec)
        #expect(parameterValues(loaded.network) == parameterValues(model.network))
        #expect(loaded.standardization == model.standardization)
        #expect(loaded.classes == ["0", "1", "2"])
        #expect(loaded.task == .classification)
        #expect(loaded.loss == model.loss)

        let inputs = rawRows(dataset, count: 50)
        let original = try model.predict(inputs)
        let reloaded = try loaded.predict(inputs)
        #expect(reloaded.outputs == original.outputs)
        #expect(reloaded.predictions == original.predictions)
        // Saving the loaded model gives the same bytes.
        #expect(loaded.safetensors() == bytes)
    }

    @Test func theFileCarriesTheMetadataOfTheAPI() throws {
        let (model, _) = try trainedSpirals()
        let file = try SafeTensorsFile.parse(model.safetensors())
        let metadata = file.metadata
        for key in ["format", "version", "architecture", "preprocessing", "classes", "input_shape"] {
            #expect(metadata[key] != nil, "no \(key) in \(metadata.keys.sorted())")
        }
        #expect(metadata["format"] == "descent")
        #expect(metadata["version"] == "1")
        #expect(metadata["task"] == "classification")

        let architecture = json(try #require(metadata["architecture"]))
        #expect(architecture == model.network.spec.jsonValue)
        #expect(architecture["input_shape"] == [2])
        #expect(architecture["layers"] == json("""
        [{"type": "dense", "units": 16, "activation": "tanh", "bias": true}, {"type": "dropout", "rate": 0.1},
         {"type": "dense", "units": 3, "activation": "linear", "bias": true}]
        """))

        let standardization = try #require(model.standardization)
        let preprocessing = json(try #require(metadata["preprocessing"]))
        guard case .array(let mean)? = preprocessing["mean"], case .array(let std)? = preprocessing["std"] else {
            Issue.record("preprocessing is \(preprocessing)")
            return
        }
        #expect(mean.map { if case .number(let n) = $0 { Float(n) } else { .nan } } == standardization.mean)
        #expect(std.map { if case .number(let n) = $0 { Float(n) } else { .nan } } == standardization.std)
        #expect(json(try #require(metadata["classes"])) == ["0", "1", "2"])
        #expect(json(try #require(metadata["input_shape"])) == [2])
        #expect(json(try #require(metadata["loss"]))["type"] == "cross_entropy")

        // Tensors `layers.<i>.<param>` in torch layout (weight: out × in); the dropout layer has none.
        #expect(file.tensors.map(\.name) == ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"])
        #expect(file.tensors.map(\.shape) == [[16, 2], [16], [3, 16], [3]])
        #expect(file.tensors.map(\.values) == parameterValues(model.network))
    }

    @Test func aModelTrainedWithoutStandardizationSavesNullPreprocessing() throws {
        let (model, dataset) = try trainedSpirals(standardize: false)
        #expect(model.standardization == nil)
        let bytes = model.safetensors()
        #expect(try SafeTensorsFile.parse(bytes).metadata["preprocessing"] == "null")
        let loaded = try TrainedModel.load(bytes)
        #expect(loaded.standardization == nil)
        let inputs = rawRows(dataset, count: 10)
        #expect(try loaded.predict(inputs).outputs == (try model.predict(inputs)).outputs)
    }

    @Test func loadingRefusesFilesThatAreNotDescentModels() throws {
        let (model, _) = try trainedSpirals()
        let file = try SafeTensorsFile.parse(model.safetensors())

        var otherFormat = file
        otherFormat.metadata["format"] = "pt"
        #expect(throws: TrainedModel.LoadError.self) { try TrainedModel.load(otherFormat.serialized()) }

        var otherVersion = file
        otherVersion.metadata["version"] = "2"
        #expect(throws: TrainedModel.LoadError.self) { try TrainedModel.load(otherVersion.serialized()) }

        var missingTensor = file
        missingTensor.tensors.removeLast()
        #expect(throws: TrainedModel.LoadError.self) { try TrainedModel.load(missingTensor.serialized()) }

        var wrongShape = file
        wrongShape.tensors[0] = SafeTensorsFile.Entry(name: "layers.0.weight", shape: [2, 16], values: file.tensors[0].values)
        #expect(throws: TrainedModel.LoadError.self) { try TrainedModel.load(wrongShape.serialized()) }

        var noArchitecture = file
        noArchitecture.metadata["architecture"] = nil
        #expect(throws: TrainedModel.LoadError.self) { try TrainedModel.load(noArchitecture.serialized()) }

        #expect(throws: (any Error).self) { try TrainedModel.load(Data("not a model".utf8)) }
    }

    // MARK: Predicting

    @Test func predictStandardizesRawInputsLikeTraining() throws {
        let (model, dataset) = try trainedSpirals()
        let standardization = try #require(model.standardization)
        let inputs = rawRows(dataset, count: 20)
        let prediction = try model.predict(inputs)

        // By hand: standardize, forward in inference mode, softmax.
        var features = inputs.flatMap { $0.map(Float.init) }
        standardization.apply(to: &features, featureCount: 2)
        let logits = model.network.forward(Tensor(shape: [20, 2], values: features), isTraining: false).array
        for row in 0..<20 {
            let z = logits[(row * 3)..<(row * 3 + 3)].map(Double.init)
            let maximum = z.max()!
            let exponentials = z.map { exp($0 - maximum) }
            let expected = exponentials.map { $0 / exponentials.reduce(0, +) }
            for k in 0..<3 {
                #expect(abs(Double(prediction.outputs[row][k]) - expected[k]) < 1e-6)
            }
        }
        // Feeding already standardized values is not the same thing.
        let twice = try model.predict(stride(from: 0, to: 40, by: 2).map { [Double(features[$0]), Double(features[$0 + 1])] })
        #expect(twice.outputs != prediction.outputs)
    }

    @Test func predictReturnsProbabilitiesAndClassLabels() throws {
        let (model, dataset) = try trainedSpirals()
        let inputs = rawRows(dataset, count: 100)
        let prediction = try model.predict(inputs)
        #expect(prediction.outputs.count == 100)
        #expect(prediction.predictions.count == 100)
        var correct = 0
        for (row, probabilities) in prediction.outputs.enumerated() {
            #expect(probabilities.count == 3)
            #expect(probabilities.allSatisfy { (0...1).contains($0) })
            #expect(abs(probabilities.reduce(0, +) - 1) < 1e-5)
            let best = probabilities.indices.max { probabilities[$0] < probabilities[$1] }!
            #expect(prediction.predictions[row] == .string(String(best)))
            if best == Int(dataset.classIndices[row]) { correct += 1 }
        }
        // Five epochs on the spirals: far better than chance.
        #expect(correct > 50)
    }

    @Test func textLabelsComeBackAsPredictions() throws {
        var dataset = BuiltinDataset.moons.generate(BuiltinDatasetOptions(samples: 400, seed: 2))
        dataset.classes = ["cat", "dog"]
        let (_, outcome) = try train("""
        {"dataset": {"id": "ds_pets"}, "model": {"layers": [{"type": "dense", "units": 8, "activation": "tanh"}, {"type": "dense", "units": 2}]},
         "optimizer": {"type": "adam", "lr": 0.05}, "training": {"epochs": 5}}
        """, on: dataset)
        let loaded = try TrainedModel.load(outcome.model.safetensors())
        #expect(loaded.classes == ["cat", "dog"])
        let prediction = try loaded.predict(rawRows(dataset, count: 40))
        let labels = prediction.predictions.map { if case .string(let label) = $0 { label } else { "\($0)" } }
        #expect(Set(labels) == ["cat", "dog"])
    }

    @Test func binaryCrossEntropyGivesAProbabilityAndALabel() throws {
        let dataset = BuiltinDataset.moons.generate(BuiltinDatasetOptions(samples: 400, seed: 2))
        let (_, outcome) = try train("""
        {"dataset": {"id": "ds_moons"}, "loss": "bce_with_logits",
         "model": {"layers": [{"type": "dense", "units": 8, "activation": "tanh"}, {"type": "dense", "units": 1}]},
         "optimizer": {"type": "adam", "lr": 0.05}, "training": {"epochs": 10}}
        """, on: dataset)
        let model = try TrainedModel.load(outcome.model.safetensors())
        #expect(model.loss == .bceWithLogits)
        let prediction = try model.predict(rawRows(dataset, count: 40))
        for (row, output) in prediction.outputs.enumerated() {
            #expect(output.count == 1 && (0...1).contains(output[0]))
            #expect(prediction.predictions[row] == .string(output[0] >= 0.5 ? "1" : "0"))
        }
        #expect(try #require(outcome.history.last?.validationAccuracy) >= 0.8)
    }

    @Test func aRegressionModelPredictsValues() throws {
        let dataset = linearDataset(rows: 300)
        let (_, outcome) = try train("""
        {"dataset": {"id": "ds_linear"}, "loss": "mse", "model": {"layers": [{"type": "dense", "units": 1}]},
         "optimizer": {"type": "adam", "lr": 0.05}, "training": {"epochs": 30}}
        """, on: dataset)
        let bytes = outcome.model.safetensors()
        let metadata = try SafeTensorsFile.parse(bytes).metadata
        #expect(metadata["classes"] == "null")
        #expect(metadata["task"] == "regression")
        let model = try TrainedModel.load(bytes)
        #expect(model.task == .regression && model.classes == nil && model.loss == .mse)
        let prediction = try model.predict([[0, 0, 0], [1, 1, 1]])
        #expect(prediction.predictions == prediction.outputs.map { JSONValue($0[0]) })
        #expect(abs(prediction.outputs[0][0] - 1) < 0.05)    // 3·0 − 2·0 + 0.5·0 + 1
        #expect(abs(prediction.outputs[1][0] - 2.5) < 0.05)  // 3 − 2 + 0.5 + 1
    }

    @Test func badInputRowsAreRefusedWithTheirPath() throws {
        let (model, _) = try trainedSpirals()
        let short = inputError(model, [[0.1, 0.2], [0.3]])
        #expect(short?.path == "inputs[1]")
        #expect(short?.message.contains("has 1 values; the model takes 2") == true)

        let long = inputError(model, [[0.1, 0.2, 0.3]])
        #expect(long?.path == "inputs[0]")

        let notANumber = inputError(model, [[0.1, 0.2], [0.3, 0.4], [0.5, .nan]])
        #expect(notANumber?.path.hasPrefix("inputs[2]") == true)
        #expect(notANumber?.path == "inputs[2][1]")
        #expect(notANumber?.message.contains("finite") == true)

        let infinite = inputError(model, [[.infinity, 0]])
        #expect(infinite?.path == "inputs[0][0]")

        #expect(inputError(model, [])?.path == "inputs")
        #expect(inputError(model, [[0.1, 0.2]]) == nil)
    }
}
