import Foundation
import Hummingbird

/// `/healthz`, `/metrics`, `/openapi.yaml`.
struct ServiceController {
    let metrics: ServerMetrics

    func addRoutes(to router: Router<some RequestContext>) {
        router.get("healthz") { _, _ in jsonResponse(["status": "ok"]) }
        router.get("metrics") { _, _ in
            let text = metrics.exposition()
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("openapi.yaml") { _, _ in
            let url = URL(fileURLWithPath: publicFolder()).appendingPathComponent("openapi.yaml")
            let data = try Data(contentsOf: url)
            return Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
    }
}
