import Dispatch
import Foundation
import JobStore
import NeuralNetwork
import ONNX
import Training

/// `GET /v1/jobs/{id}/model?format=`: the saved `.safetensors` file as it is, or the same model as ONNX.
enum ModelFormat {
    static let safetensors = "safetensors"
    static let onnx = "onnx"
    static let names = [safetensors, onnx]
}

extension JobController {
    /// The model saved in `data` (any stage) as an ONNX file; a GAN's generator for a GAN job. A model the
    /// exporter cannot express is a 409 naming the layer. Loading and exporting run off the cooperative
    /// threads (`offCooperativePool`): a big model takes a while, and they must keep answering other requests.
    func onnxExport(of data: Data, job: JobRecord) async throws -> Data {
        let name = job.name ?? job.id
        do {
            return try await offCooperativePool {
                if GANModel.isGAN(data) { return try ONNXExport.export(generatorOf: GANModel.load(data), name: name) }
                return try ONNXExport.export(TrainedModel.load(data), name: name)
            }
        } catch let error as ONNXExportError {
            throw APIError.notExportable(error)
        }
    }
}

extension APIError {
    /// 409 `not_exportable`: the model holds something ONNX cannot express; the message and the one detail name the layer.
    static func notExportable(_ error: ONNXExportError) -> APIError {
        APIError(status: .conflict, code: "not_exportable", message: "this model cannot be exported as ONNX: \(error)",
                 details: [SpecIssue(path: error.path, message: error.layerType.map { "\($0): \(error.reason)" } ?? error.reason)])
    }
}
