import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A Server-Sent Events stream read with a URLSession data delegate (corelibs Foundation has no
/// `bytes(for:)`): chunks are split into events as they arrive.
struct ServerSentEventStream {
    struct Event: Sendable {
        var name: String
        var id: String?
        var data: String
    }

    let client: APIClient
    let path: String
    let lastEventId: String?

    func events() -> AsyncThrowingStream<Event, Error> {
        AsyncThrowingStream { continuation in
            var request = URLRequest(url: client.base.appendingPathComponent(path))
            request.setValue("text/event-stream", forHTTPHeaderField: "Accept")
            if let token = client.token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
            if let lastEventId { request.setValue(lastEventId, forHTTPHeaderField: "Last-Event-ID") }
            request.timeoutInterval = 3600
            let delegate = Delegate(continuation: continuation)
            let session = URLSession(configuration: .ephemeral, delegate: delegate, delegateQueue: nil)
            let task = session.dataTask(with: request)
            continuation.onTermination = { _ in
                task.cancel()
                session.invalidateAndCancel()
            }
            task.resume()
        }
    }

    private final class Delegate: NSObject, URLSessionDataDelegate, @unchecked Sendable {
        let continuation: AsyncThrowingStream<Event, Error>.Continuation
        private var buffer = ""
        private let lock = NSLock()

        init(continuation: AsyncThrowingStream<Event, Error>.Continuation) { self.continuation = continuation }

        func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                        completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
            let status = (response as? HTTPURLResponse)?.statusCode ?? 0
            guard (200..<300).contains(status) else {
                continuation.finish(throwing: APIClient.Failure(description: "the event stream answered HTTP \(status)"))
                completionHandler(.cancel)
                return
            }
            completionHandler(.allow)
        }

        func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
            lock.lock()
            defer { lock.unlock() }
            buffer += String(decoding: data, as: UTF8.self)
            while let end = buffer.range(of: "\n\n") {
                let block = String(buffer[..<end.lowerBound])
                buffer.removeSubrange(..<end.upperBound)
                var name = "message", id: String?, payload: String?
                for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                    if line.hasPrefix("event: ") { name = String(line.dropFirst(7)) }
                    else if line.hasPrefix("id: ") { id = String(line.dropFirst(4)) }
                    else if line.hasPrefix("data: ") { payload = (payload.map { $0 + "\n" } ?? "") + line.dropFirst(6) }
                }
                if let payload { continuation.yield(Event(name: name, id: id, data: payload)) }
            }
        }

        func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
            if let error { continuation.finish(throwing: error) } else { continuation.finish() }
        }
    }
}
