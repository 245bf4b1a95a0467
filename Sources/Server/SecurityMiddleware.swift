import Foundation
import HTTPTypes
import Hummingbird
import JobStore
import Logging

/// The outermost middleware: what a browser must be told about every response, and what a browser
/// must not be made to do.
///
/// - Every response, errors included, carries `Content-Security-Policy` (the status page loads its own
///   script, style and data only, and may not be framed), `X-Content-Type-Options: nosniff`,
///   `X-Frame-Options: DENY` and `Referrer-Policy: no-referrer`.
/// - Errors that are not the API's own (a store or disk failure surfacing as a plain Swift error) are
///   answered with the error envelope, a 507 when the disk is full, else a 500, and logged with their
///   cause, never an empty body.
/// - With auth off (a loopback server), a browser is the only attacker that can reach the port: a web
///   page that makes it post to 127.0.0.1, or a DNS name rebound to 127.0.0.1. So the `Host` header must
///   name this server (a loopback name, or `--host`), and a state-changing request a browser marks as
///   cross-site (`Sec-Fetch-Site`, or an `Origin` that is not this server) is a 403. curl, scripts and the
///   status page itself (same origin) send neither mark and keep working.
struct SecurityMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Auth off: check `Host` and cross-site requests (with auth on, a browser holds no bearer token to abuse).
    let checksBrowserOrigin: Bool
    /// Host names (without port) that name this server besides the loopback ones: `--host`.
    let allowedHosts: Set<String>
    /// What every response carries; over TLS also `Strict-Transport-Security`, so a browser that has
    /// been here once never sends the token in the clear.
    let headers: HTTPFields
    let logger: Logger

    init(checksBrowserOrigin: Bool, allowedHosts: Set<String>, servesTLS: Bool, logger: Logger) {
        self.checksBrowserOrigin = checksBrowserOrigin
        self.allowedHosts = allowedHosts
        self.logger = logger
        var headers: HTTPFields = [
            .contentSecurityPolicy: "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            .xContentTypeOptions: "nosniff",
            .xFrameOptions: "DENY",
            .referrerPolicy: "no-referrer",
        ]
        if servesTLS { headers[.strictTransportSecurity] = "max-age=31536000" }
        self.headers = headers
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            if checksBrowserOrigin { try checkOrigin(of: request) }
            var response = try await next(request, context)
            for field in headers where response.headers[field.name] == nil { response.headers.append(field) }
            return response
        } catch var error as APIError {
            // Thrown on, not answered here: Hummingbird then ends a request whose body was not read (a 408, a 413).
            error.headers.append(contentsOf: headers)
            throw error
        } catch let error as any HTTPResponseError {
            throw APIError(status: error.status, code: error.status.code == 404 ? "not_found" : "http_\(error.status.code)",
                           message: error.status.reasonPhrase, headers: headers)
        } catch where OutOfSpace.describes(error) {
            logger.error("\(request.method) \(request.uri.path) failed, the disk is full: \(String(reflecting: error))")
            throw APIError(status: .init(code: 507, reasonPhrase: "Insufficient Storage"), code: "insufficient_storage",
                           message: "the server's disk is full; nothing was stored. Deleting datasets or jobs frees space", headers: headers)
        } catch {
            logger.error("\(request.method) \(request.uri.path) failed: \(String(reflecting: error))")
            throw APIError(status: .internalServerError, code: "internal_error",
                           message: "the server could not complete the request: \(error)", headers: headers)
        }
    }

    private func checkOrigin(of request: Request) throws {
        // The Host header (HTTP/1.1) arrives as the authority; a request without one (HTTP/1.0 tools)
        // cannot have come from a rebound DNS name.
        if let host = request.head.authority, !isThisServer(authority: host) {
            throw APIError(status: .forbidden, code: "wrong_host",
                           message: "the Host header \(host.prefix(100)) does not name this server; with auth off it answers only to loopback names and --host")
        }
        guard ![.get, .head, .options].contains(request.method) else { return }
        if let site = request.headers[.secFetchSite]?.lowercased(), site != "same-origin", site != "none" {
            throw crossSite("the browser marks it Sec-Fetch-Site: \(site.prefix(40))")
        }
        if let origin = request.headers[.origin] {
            // "null" (sandboxed frames, file: pages) is cross-site too.
            guard let url = URL(string: origin), let host = url.host, isThisServer(authority: host) else {
                throw crossSite("it comes from the page at \(origin.prefix(100))")
            }
        }
    }

    private func crossSite(_ why: String) -> APIError {
        APIError(status: .forbidden, code: "cross_site_request",
                 message: "a cross-site request may not change anything on this server (\(why)); call it from the status page, curl or a script, or turn auth on")
    }

    /// Whether `authority` (`host`, `host:port`, `[::1]:port`) is a loopback name or one of `allowedHosts`.
    func isThisServer(authority: String) -> Bool {
        var host = authority.lowercased()
        if host.hasPrefix("["), let end = host.firstIndex(of: "]") {
            host = String(host[host.index(after: host.startIndex)..<end])
        } else if let colon = host.lastIndex(of: ":"), host.firstIndex(of: ":") == colon {
            host = String(host[..<colon])
        }
        if host.hasSuffix(".") { host.removeLast() }
        return ServerConfiguration.isLoopback(host: host) || allowedHosts.contains(host)
    }
}

extension HTTPField.Name {
    static let xFrameOptions = Self("X-Frame-Options")!
    static let referrerPolicy = Self("Referrer-Policy")!
    static let secFetchSite = Self("Sec-Fetch-Site")!
}
