import Datasets
import Foundation
import NeuralNetwork
import Testing
@testable import Training

/// Reads `{"augmentation": <text>}` as the job spec reader would; the steps and every issue.
private func readAugmentation(_ text: String) -> (steps: [AugmentationStep]?, issues: [SpecIssue]) {
    let diagnostics = SpecDiagnostics()
    guard let root = ObjectReader(json(#"{"augmentation": \#(text)}"#), path: "", diagnostics: diagnostics, allowedKeys: ["augmentation"]) else {
        return (nil, diagnostics.issues)
    }
    let steps = AugmentationSpec.read(root)
    return (steps, diagnostics.issues)
}

@Suite("Augmentation spec")
struct AugmentationSpecTests {
    @Test("absent, null and [] mean no augmentation")
    func empty() {
        let diagnostics = SpecDiagnostics()
        let root = ObjectReader(json("{}"), path: "", diagnostics: diagnostics, allowedKeys: ["augmentation"])!
        #expect(AugmentationSpec.read(root) == [])
        #expect(readAugmentation("null").steps == [])
        #expect(readAugmentation("[]").steps == [])
        #expect(diagnostics.isEmpty)
    }

    @Test("every type reads with its fields, in order")
    func allTypes() {
        let (steps, issues) = readAugmentation("""
        [{"type": "random_shift", "pixels": 2}, {"type": "random_flip", "horizontal": false, "vertical": true},
         {"type": "random_rotation", "degrees": 12.5}, {"type": "random_crop", "padding": 4}, {"type": "cutout", "size": 8},
         {"type": "gaussian_noise", "std": 0.05}, {"type": "mixup", "alpha": 0.4}]
        """)
        #expect(issues.isEmpty)
        #expect(steps == [.randomShift(pixels: 2), .randomFlip(horizontal: false, vertical: true), .randomRotation(degrees: 12.5),
                          .randomCrop(padding: 4), .cutout(size: 8), .gaussianNoise(std: 0.05), .mixup(alpha: 0.4)])
    }

    @Test("fields left out take their defaults, and the filled-in list reads back the same")
    func defaultsRoundTrip() throws {
        let (steps, issues) = readAugmentation("""
        [{"type": "random_shift"}, {"type": "random_flip"}, {"type": "random_rotation"}, {"type": "random_crop"},
         {"type": "cutout"}, {"type": "gaussian_noise"}, {"type": "mixup"}]
        """)
        #expect(issues.isEmpty)
        let expected: [AugmentationStep] = [.randomShift(pixels: 2), .randomFlip(horizontal: true, vertical: false), .randomRotation(degrees: 15),
                                            .randomCrop(padding: 4), .cutout(size: 4), .gaussianNoise(std: 0.1), .mixup(alpha: 0.2)]
        #expect(steps == expected)
        let written = AugmentationSpec.jsonValue(expected)
        #expect(written.encodedString() == #"[{"pixels":2,"type":"random_shift"},{"horizontal":true,"type":"random_flip","vertical":false},{"degrees":15,"type":"random_rotation"},{"padding":4,"type":"random_crop"},{"size":4,"type":"cutout"},{"std":0.1,"type":"gaussian_noise"},{"alpha":0.2,"type":"mixup"}]"#)
        let diagnostics = SpecDiagnostics()
        #expect(AugmentationSpec.parse(written, path: "augmentation", diagnostics: diagnostics) == expected)
        #expect(diagnostics.isEmpty)
        #expect(AugmentationStep.mixup(alpha: 0.2).jsonValue == ["type": "mixup", "alpha": 0.2])
    }

    @Test("every problem is reported at once, with its path", arguments: [
        (#"[{"type": "random_shift", "pixels": 0}]"#, "augmentation[0].pixels", "must be between 1 and 1024, got 0"),
        (#"[{"type": "random_shift", "pixels": 1.5}]"#, "augmentation[0].pixels", "must be an integer, got 1.5"),
        (#"[{"type": "random_rotation", "degrees": 0}]"#, "augmentation[0].degrees", "must be > 0 and ≤ 180, got 0"),
        (#"[{"type": "random_rotation", "degrees": 270}]"#, "augmentation[0].degrees", "must be > 0 and ≤ 180, got 270"),
        (#"[{"type": "random_crop", "padding": -1}]"#, "augmentation[0].padding", "must be between 1 and 1024, got -1"),
        (#"[{"type": "cutout", "size": 0}]"#, "augmentation[0].size", "must be between 1 and 1024, got 0"),
        (#"[{"type": "gaussian_noise", "std": -0.1}]"#, "augmentation[0].std", "must be > 0, got -0.1"),
        (#"[{"type": "mixup", "alpha": 0}]"#, "augmentation[0].alpha", "must be > 0, got 0"),
        (#"[{"type": "random_flip", "horizontal": "yes"}]"#, "augmentation[0].horizontal", "must be true or false, got \"yes\""),
        (#"[{"type": "random_flip", "horizontal": false}]"#, "augmentation[0].horizontal", "random_flip needs horizontal or vertical (or both) to be true"),
        (#"[{"type": "random_shift", "pixel": 2}]"#, "augmentation[0].pixel", "unknown key; expected one of: type, pixels"),
        (#"[{"type": "mixup", "alpha": 1}, {"type": "mixup"}]"#, "augmentation[1]", "mixup may appear only once"),
        (#"{"type": "mixup"}"#, "augmentation", "must be a list of steps such as [{\"type\": \"random_shift\", \"pixels\": 2}], got an object"),
        (#"["mixup"]"#, "augmentation[0]", "must be an object such as {\"type\": \"random_flip\"}, got a string"),
        (#"[{"pixels": 2}]"#, "augmentation[0].type", "is required: one of random_shift, random_flip, random_rotation, random_crop, cutout, gaussian_noise, mixup"),
        (#"[{"type": "random_erasing"}]"#, "augmentation[0].type", "must be one of random_shift, random_flip, random_rotation, random_crop, cutout, gaussian_noise, mixup, got \"random_erasing\""),
    ])
    func problems(_ text: String, _ path: String, _ message: String) {
        let issues = readAugmentation(text).issues
        #expect(issues == [SpecIssue(path: path, message: message)], "\(text)")
    }

    @Test("problems in several steps are all reported")
    func several() {
        let (steps, issues) = readAugmentation("""
        [{"type": "random_shift", "pixels": 0}, {"type": "cutout", "size": 4}, {"type": "nope"}, {"type": "gaussian_noise", "std": 0, "mean": 1}]
        """)
        #expect(issues.map(\.path) == ["augmentation[0].pixels", "augmentation[2].type", "augmentation[3].mean", "augmentation[3].std"])
        #expect(steps?.count == 3)
    }

    @Test("against the data: image steps need [C, H, W], and sizes must fit")
    func againstTheData() {
        let steps: [AugmentationStep] = [.randomShift(pixels: 2), .gaussianNoise(std: 0.1), .cutout(size: 9), .mixup(alpha: 0.2)]
        #expect(AugmentationSpec.problems(steps: steps, sampleShape: [64]) == [
            SpecIssue(path: "augmentation[0]", message: "random_shift needs images [C, H, W]; the data's samples are [64] — set model.input_shape, e.g. [1, 8, 8]"),
            SpecIssue(path: "augmentation[2]", message: "cutout needs images [C, H, W]; the data's samples are [64] — set model.input_shape, e.g. [1, 8, 8]"),
        ])
        #expect(AugmentationSpec.problems(steps: steps, sampleShape: [1, 8, 8]) == [
            SpecIssue(path: "augmentation[2].size", message: "must be at most the image's height and width (8×8), got 9"),
        ])
        #expect(AugmentationSpec.problems(steps: steps, sampleShape: [3, 16, 16]).isEmpty)
        #expect(AugmentationSpec.problems(steps: [.gaussianNoise(std: 1), .mixup(alpha: 1)], sampleShape: [4]).isEmpty)
    }
}
