import Foundation
import HTTPTypes
import Hummingbird
import JobStore

/// The request context of every route: Hummingbird's core context and the tenant a `/v1` request
/// acts for, which `TenantMiddleware` establishes before any handler runs.
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Nil on the open routes (`/`, `/healthz`, `/metrics`, `/openapi.yaml`, static files).
    var authenticatedTenant: String?

    public init(source: Source) {
        coreContext = .init(source: source)
    }

    /// The tenant of a `/v1` request. A route outside `TenantMiddleware` has none, and is refused
    /// (401) rather than served as someone's.
    func tenant() throws -> String {
        guard let authenticatedTenant else { throw APIError.unauthorized("this route requires a bearer token") }
        return authenticatedTenant
    }
}

/// Establishes the tenant of each `/v1` request. With auth on, from its `Authorization: Bearer
/// <token>` header: a missing, unknown or revoked token is a 401 (with `WWW-Authenticate: Bearer`)
/// before any handler runs. With auth off, every request acts for the default tenant.
struct TenantMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    /// Nil: auth off.
    let tokens: (any TokenRepository)?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.authenticatedTenant = try tenant(of: request)
        return try await next(request, context)
    }

    private func tenant(of request: Request) throws -> String {
        guard let tokens else { return Tenant.default }
        guard let header = request.headers[.authorization] else {
            throw APIError.unauthorized("this server requires a token: send Authorization: Bearer <token> (made with descent token create --tenant NAME)")
        }
        // RFC 6750: the scheme is case-insensitive, then one space and the token.
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw APIError.unauthorized("the Authorization header must be Bearer <token>", invalidToken: true)
        }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        // Tokens are 47 characters; anything much longer is not worth hashing.
        guard !token.isEmpty, token.utf8.count <= 256, let tenant = try tokens.tenant(authenticatedBy: token) else {
            throw APIError.unauthorized("the token is unknown or revoked", invalidToken: true)
        }
        return tenant
    }
}

/// The shapes of the ids in `/v1/…` paths. A path id of another shape is answered 404 before any
/// lookup, so nothing else (`..`, slashes, NUL bytes) reaches a query or a file name.
enum ResourceKind: String {
    case job, dataset, study

    var idPrefix: String {
        switch self {
        case .job: "job_"
        case .dataset: "ds_"
        case .study: "st_"
        }
    }

    func isWellFormed(_ id: String) -> Bool { isWellFormedIdentifier(id, prefix: idPrefix) }
}

extension AppRequestContext {
    /// The `:id` of the path, if it has the shape of a `kind` id; 404 (as for an unknown id) otherwise.
    func requireID(_ kind: ResourceKind) throws -> String {
        let id = try parameters.require("id")
        guard kind.isWellFormed(id) else { throw APIError.notFound(kind.rawValue, id) }
        return id
    }
}
