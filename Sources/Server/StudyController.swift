import Foundation
import HTTPTypes
import Hummingbird
import JobStore
import NeuralNetwork
import Training
import Workers

/// `/v1/studies`: comparisons and hyperparameter searches. A study turns a base job spec and a
/// search space into one ordinary job per combination of parameter values, checks every one as
/// `POST /v1/jobs` does, and queues them all in one transaction — or none. Reading a study ranks
/// its jobs by the objective.
struct StudyController {
    let studies: any StudyRepository
    let jobs: any JobRepository
    let datasets: any DatasetRepository
    let folder: DataFolder
    let pool: WorkerPool
    let events: JobEventHub
    let specBody: JSONBodyLimits
    let limits: JobLimits
    /// What a tenant's queued and running jobs may hold together.
    let tenantLimits: TenantLimits

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.post(use: create)
        group.get(use: list)
        group.get(":id", use: show)
    }

    // MARK: Creating

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let tenant = try context.tenant()
        let json = try await request.decodeJSONBody(specBody)
        let study: StudyRequest
        do { study = try StudyRequest.parse(json) } catch { throw APIError.invalid(error.issues, message: "the study is invalid") }
        let combinations: [Combination]
        do { combinations = try study.combinations() } catch { throw APIError.invalid(error.issues, message: "the study is invalid") }

        // Every combination is checked before anything is stored.
        var checker = JobSpecChecker(datasets: datasets, jobs: jobs, folder: folder, tenant: tenant, limits: limits)
        var planned: [(job: NewJob, parameters: String)] = []
        var problems = ProblemCollector(combinationCount: combinations.count)
        for (offset, combination) in combinations.enumerated() {
            let number = offset + 1
            let label = study.label(of: combination)
            var specJSON = study.base
            var applied = true
            for (parameter, choice) in zip(study.parameters, combination.choices) {
                do { try parameter.path.set(choice.value, in: &specJSON) } catch {
                    // A problem of the path, whatever the value.
                    problems.add(path: "parameters.\(parameter.key)", message: error.message)
                    applied = false
                    break
                }
            }
            guard applied else { continue }
            var spec: JobSpec
            do { spec = try checker.check(specJSON) } catch let specProblems as SpecProblems {
                for issue in specProblems.issues {
                    if let parameter = study.parameter(responsibleFor: issue.path) {
                        let choice = combination.choices[parameter.offset]
                        let message = issue.path == parameter.element.key ? issue.message : "\(issue.path): \(issue.message)"
                        problems.add(path: parameter.element.issuePath(choice), message: message)
                    } else {
                        problems.add(path: issue.path.isEmpty ? "base" : "base.\(issue.path)", message: issue.message,
                                     combination: number, label: label)
                    }
                }
                continue
            }
            let name = Self.jobName(study: study.name, number: number, label: label)
            spec.name = name
            planned.append((
                NewJob(spec, tenant: tenant, name: name),
                study.parametersJSON(combination).encodedString()))
        }
        guard problems.isEmpty else { throw APIError.invalid(problems.issues, message: "the study is invalid") }

        let record = StudyRecord(tenant: tenant, name: study.name, spec: study.jsonValue.encodedString(), strategy: study.strategy.rawValue,
                                 objectiveMetric: study.objective.metric.rawValue, objectiveMode: study.objective.mode.rawValue)
        let stored: StudyRecord, queued: [JobRecord]
        do {
            (stored, queued) = try studies.createStudy(record, jobs: planned.map(\.job), parameters: planned.map(\.parameters),
                                                       limits: tenantLimits)
        } catch { throw APIError.limit(error) ?? error }
        for job in queued { events.publish(.status(jobId: job.id, status: .queued)) }
        pool.jobWasQueued()
        return jsonResponse([
            "id": JSONValue(stored.id), "name": JSONValue(stored.name), "status": "running",
            "job_ids": JSONValue(queued.map(\.id)), "links": stored.links,
        ], status: .created, headers: [.location: "/v1/studies/\(stored.id)"])
    }

    /// "<study name> #k (path=value, …)", within the 200 characters a job name may have.
    static func jobName(study: String, number: Int, label: String) -> String {
        let name = "\(study) #\(number) (\(label))"
        return name.count <= 200 ? name : String(name.prefix(199)) + "…"
    }

    // MARK: Reading

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let entries = try studies.listStudies(tenant: try context.tenant()).map { study -> JSONValue in
            let members = try studies.jobs(studyId: study.id)
            var fields = study.summaryFields(jobs: members)
            var counts = Dictionary(uniqueKeysWithValues: JobStatus.allCases.map { ($0.rawValue, 0) })
            for job in members { counts[job.status.rawValue, default: 0] += 1 }
            fields["counts"] = .object(counts.mapValues { JSONValue($0) })
            fields["job_count"] = JSONValue(members.count)
            return .object(fields)
        }
        return jsonResponse(["studies": .array(entries)])
    }

    @Sendable func show(_ request: Request, context: AppRequestContext) async throws -> Response {
        let id = try context.requireID(.study)
        guard let study = try studies.study(id: id, tenant: try context.tenant()) else { throw APIError.notFound("study", id) }
        let members = try studies.jobs(studyId: study.id)
        let objective = Objective(metric: ObjectiveMetric(rawValue: study.objectiveMetric) ?? .valLoss,
                                  mode: ObjectiveMode(rawValue: study.objectiveMode) ?? .min)
        let ranked = try objective.rank(members.map { job in (job, try jobs.metrics(jobId: job.id)) })

        var fields = study.summaryFields(jobs: members)
        fields["jobs"] = .array(ranked.enumerated().map { position, entry in
            var job: [String: JSONValue] = [
                "id": JSONValue(entry.job.id), "name": JSONValue(entry.job.name), "status": JSONValue(entry.job.status.rawValue),
                "parameters": parsedJSON(entry.job.studyParameters), "progress": JSONValue(entry.job.progress),
                "epoch": JSONValue(entry.job.epoch), "epochs": JSONValue(entry.job.epochs),
                "rank": entry.value == nil ? .null : JSONValue(position + 1),
                "objective_value": entry.value.map { JSONValue($0) } ?? .null,
                "best": entry.best ?? .null,
                "error": entry.job.errorCode.map { ["code": JSONValue($0), "message": JSONValue(entry.job.errorMessage)] } ?? .null,
            ]
            job["links"] = ["self": JSONValue("/v1/jobs/\(entry.job.id)"), "metrics": JSONValue("/v1/jobs/\(entry.job.id)/metrics")]
            return .object(job)
        })
        fields["best_job"] = ranked.first { $0.value != nil }.map { JSONValue($0.job.id) } ?? .null
        fields["spec"] = parsedJSON(study.spec)
        return jsonResponse(.object(fields))
    }
}

// MARK: - The request

/// A `POST /v1/studies` body: `{"name", "base", "search", "parameters", "objective"}`.
struct StudyRequest {
    var name: String
    /// The job spec as posted; each combination sets its values into a copy of it.
    var base: JSONValue
    var strategy: SearchStrategy
    var maxJobs: Int
    var seed: UInt64
    /// In the order of their paths (JSON objects have no order), so a parent (`optimizer`) is
    /// set before its children (`optimizer.lr`).
    var parameters: [SearchParameter]
    var objective: Objective

    static let maxJobsLimit = 1000

    static func parse(_ json: JSONValue) throws(SpecProblems) -> StudyRequest {
        let diagnostics = SpecDiagnostics()
        let request = read(json, diagnostics: diagnostics)
        guard diagnostics.isEmpty, let request else {
            throw SpecProblems(issues: diagnostics.issues.isEmpty ? [SpecIssue(path: "", message: "invalid study")] : diagnostics.issues)
        }
        return request
    }

    private static func read(_ json: JSONValue, diagnostics: SpecDiagnostics) -> StudyRequest? {
        guard let root = ObjectReader(json, path: "", diagnostics: diagnostics,
                                      allowedKeys: ["name", "base", "search", "parameters", "objective"]) else { return nil }
        var base: JSONValue?
        switch root.fields["base"] {
        case nil, .null?: root.report("base", "is required: the job spec every job of the study starts from")
        case .object?: base = root.fields["base"]
        case let other?: root.report("base", "must be a job spec (an object), got \(other.kindName)")
        }
        var name = root.optionalString("name") ?? base?["name"].flatMap { if case .string(let text) = $0 { text } else { nil } } ?? "study"
        if name.isEmpty || name.count > 200 {
            root.report("name", "must be 1 to 200 characters")
            name = "study"
        }

        var strategy = SearchStrategy.grid, maxJobs = 20, seed: UInt64 = 0
        if let search = root.object("search", allowedKeys: ["strategy", "max_jobs", "seed"]) {
            strategy = search.choice("strategy", default: SearchStrategy.grid)
            maxJobs = search.int("max_jobs", default: 20, range: 1...maxJobsLimit)
            seed = UInt64(search.int("seed", default: 0, range: 0...Int.max))
        }

        var parameters: [SearchParameter] = []
        switch root.fields["parameters"] {
        case nil, .null?:
            root.report("parameters", "is required: {\"<path into the spec>\": [values…], …}, e.g. {\"optimizer.lr\": [0.1, 0.01]}")
        case .object(let fields)?:
            if fields.isEmpty { root.report("parameters", "must name at least one path into the spec") }
            var seen: [String: String] = [:]
            for key in fields.keys.sorted() {
                guard let parameter = SearchParameter.read(key: key, value: fields[key]!, strategy: strategy, diagnostics: diagnostics) else { continue }
                if let other = seen[parameter.path.description] {
                    diagnostics.report("parameters.\(key)", "is the same path as \"\(other)\"")
                    continue
                }
                seen[parameter.path.description] = key
                parameters.append(parameter)
            }
            parameters.sort { $0.path.description < $1.path.description }
        case let other?:
            root.report("parameters", "must be an object mapping paths into the spec to values, got \(other.kindName)")
        }

        var objective = Objective(metric: .valLoss, mode: .min)
        if let reader = root.object("objective", allowedKeys: ["metric", "mode"]) {
            let metric = reader.choice("metric", default: ObjectiveMetric.valLoss)
            objective = Objective(metric: metric, mode: reader.choice("mode", default: metric.defaultMode))
        }

        guard let base else { return nil }
        return StudyRequest(name: name, base: base, strategy: strategy, maxJobs: maxJobs, seed: seed,
                            parameters: parameters, objective: objective)
    }

    /// The request with every default filled in, as the store keeps it.
    var jsonValue: JSONValue {
        .object([
            "name": JSONValue(name),
            "base": base,
            "search": ["strategy": JSONValue(strategy.rawValue), "max_jobs": JSONValue(maxJobs), "seed": JSONValue(Double(seed))],
            "parameters": .object(Dictionary(uniqueKeysWithValues: parameters.map { ($0.key, $0.domain.jsonValue) })),
            "objective": objective.jsonValue,
        ])
    }

    /// The parameter (and its position) whose path is `issuePath` or contains it; the longest
    /// such path, so `optimizer.lr` wins over `optimizer` for an issue at `optimizer.lr`.
    func parameter(responsibleFor issuePath: String) -> (offset: Int, element: SearchParameter)? {
        parameters.enumerated()
            .filter { _, parameter in parameter.path.contains(issuePath) }
            .max { $0.element.key.count < $1.element.key.count }
    }

    /// "path=value, …" in the parameters' order.
    func label(of combination: Combination) -> String {
        zip(parameters, combination.choices).map { "\($0.key)=\(Self.describe($1.value))" }.joined(separator: ", ")
    }

    /// `{"<path>": value, …}`, the job's `parameters` in the study.
    func parametersJSON(_ combination: Combination) -> JSONValue {
        .object(Dictionary(uniqueKeysWithValues: zip(parameters, combination.choices).map { ($0.key, $1.value) }))
    }

    /// A value as it reads in a job name: `0.01`, `sgd`, `[0.9, 0.999]`, an object with a type as
    /// `sgd(lr=0.05, momentum=0.9)`.
    static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let flag): return String(flag)
        case .number(let number):
            if number.rounded() == number, abs(number) < 1e15 { return String(Int64(number)) }
            return String(format: "%g", number)
        case .string(let text): return text
        case .array(let items): return "[" + items.map(describe).joined(separator: ", ") + "]"
        case .object(let fields):
            let type: String? = if case .string(let text)? = fields["type"] { text } else { nil }
            let rest = fields.keys.sorted().filter { !(type != nil && $0 == "type") }.map { "\($0)=\(describe(fields[$0]!))" }
            if let type { return rest.isEmpty ? type : "\(type)(\(rest.joined(separator: ", ")))" }
            return "{" + rest.joined(separator: ", ") + "}"
        }
    }
}

enum SearchStrategy: String, CaseIterable, Sendable { case grid, random }

/// One key of `parameters`: where in the spec, and which values it takes.
struct SearchParameter {
    /// As written in the request.
    var key: String
    var path: SpecPath
    var domain: Domain

    enum Domain {
        /// Grid: every value; random: one drawn uniformly.
        case values([JSONValue])
        case uniform(Double, Double)
        case logUniform(Double, Double)
        case intUniform(Int, Int)

        var jsonValue: JSONValue {
            switch self {
            case .values(let values): .array(values)
            case .uniform(let low, let high): ["uniform": [JSONValue(low), JSONValue(high)]]
            case .logUniform(let low, let high): ["log_uniform": [JSONValue(low), JSONValue(high)]]
            case .intUniform(let low, let high): ["int_uniform": [JSONValue(low), JSONValue(high)]]
            }
        }
    }

    static let distributions = ["uniform", "log_uniform", "int_uniform"]

    static func read(key: String, value: JSONValue, strategy: SearchStrategy, diagnostics: SpecDiagnostics) -> SearchParameter? {
        let at = "parameters.\(key)"
        guard let path = SpecPath(key) else {
            diagnostics.report(at, "is not a path into the spec: names separated by dots, with [i] for an array element (e.g. optimizer.lr, model.layers[0].units)")
            return nil
        }
        func distribution(_ domain: Domain) -> SearchParameter? {
            guard strategy == .random else {
                diagnostics.report(at, "a grid search takes a list of values; sample a distribution with \"search\": {\"strategy\": \"random\"}")
                return nil
            }
            return SearchParameter(key: key, path: path, domain: domain)
        }
        let shape = "must be a list of values ([0.1, 0.01], or [{…}, {…}] for whole objects) or a distribution {\"uniform\"|\"log_uniform\"|\"int_uniform\": [low, high]}"
        switch value {
        case .array(let values):
            guard !values.isEmpty else {
                diagnostics.report(at, "must list at least one value")
                return nil
            }
            return SearchParameter(key: key, path: path, domain: .values(values))
        case .object(let fields):
            guard fields.count == 1, let (name, bounds) = fields.first, distributions.contains(name) else {
                diagnostics.report(at, "\(shape); to try one object, put it in a list: [{…}]")
                return nil
            }
            guard case .array(let items) = bounds, items.count == 2,
                  case .number(let low) = items[0], case .number(let high) = items[1], low.isFinite, high.isFinite else {
                let given = if case .array(let items) = bounds { "\(items.count) value\(items.count == 1 ? "" : "s")" } else { bounds.kindName }
                diagnostics.report("\(at).\(name)", "must be two numbers [low, high], got \(given)")
                return nil
            }
            switch name {
            case "int_uniform":
                guard low.rounded() == low, high.rounded() == high, abs(low) < 1e15, abs(high) < 1e15 else {
                    diagnostics.report("\(at).\(name)", "must be two integers [low, high], got [\(StudyRequest.describe(.number(low))), \(StudyRequest.describe(.number(high)))]")
                    return nil
                }
                guard low <= high else {
                    diagnostics.report("\(at).\(name)", "low must be ≤ high, got [\(Int(low)), \(Int(high))]")
                    return nil
                }
                return distribution(.intUniform(Int(low), Int(high)))
            case "log_uniform":
                guard low > 0 else {
                    diagnostics.report("\(at).\(name)", "low must be > 0 for a log-uniform distribution, got \(StudyRequest.describe(.number(low)))")
                    return nil
                }
                fallthrough
            default:
                guard low < high else {
                    diagnostics.report("\(at).\(name)", "low must be < high, got [\(StudyRequest.describe(.number(low))), \(StudyRequest.describe(.number(high)))]")
                    return nil
                }
                return distribution(name == "uniform" ? .uniform(low, high) : .logUniform(low, high))
            }
        default:
            diagnostics.report(at, "\(shape), got \(value.kindName)")
            return nil
        }
    }

    /// Where a problem of this parameter's value is reported: `parameters.optimizer.lr[2]` for the
    /// third value of a list, `parameters.optimizer.lr` for a drawn one.
    func issuePath(_ choice: Choice) -> String {
        choice.index.map { "parameters.\(key)[\($0)]" } ?? "parameters.\(key)"
    }
}

/// One value per parameter, in the parameters' order.
struct Combination {
    var choices: [Choice]

    /// Equal for equal values.
    var key: String { JSONValue.array(choices.map(\.value)).encodedString() }
}

struct Choice {
    var value: JSONValue
    /// The position in the parameter's list; nil for a value drawn from a distribution.
    var index: Int?
}

// MARK: - Expanding the search space

extension StudyRequest {
    /// Grid: the cartesian product of the lists, the first parameter varying slowest; refused
    /// with more than `max_jobs` combinations. Random: `max_jobs` draws from a generator seeded
    /// with `seed`, skipping a combination drawn before (a small list-only space gives fewer).
    func combinations() throws(SpecProblems) -> [Combination] {
        switch strategy {
        case .grid:
            var sizes: [Int] = []
            for parameter in parameters {
                guard case .values(let values) = parameter.domain else { preconditionFailure("grid parameters are lists (checked in parse)") }
                sizes.append(values.count)
            }
            let (total, overflow) = sizes.reduce((1, false)) { partial, size in
                let (product, overflow) = partial.0.multipliedReportingOverflow(by: size)
                return (product, partial.1 || overflow)
            }
            if overflow || total > maxJobs {
                let sizeText = sizes.map(String.init).joined(separator: " × ")
                throw SpecProblems(issues: [SpecIssue(
                    path: "search.max_jobs",
                    message: "the grid has \(overflow ? "more than \(Int.max)" : String(total)) combinations (\(sizeText)), more than max_jobs \(maxJobs); raise search.max_jobs (at most \(Self.maxJobsLimit)), list fewer values or use \"strategy\": \"random\"")])
            }
            var result: [Combination] = [Combination(choices: [])]
            for parameter in parameters {
                guard case .values(let values) = parameter.domain else { continue }
                result = result.flatMap { partial in
                    values.enumerated().map { index, value in Combination(choices: partial.choices + [Choice(value: value, index: index)]) }
                }
            }
            return result
        case .random:
            var generator = SplitMix64(seed: seed)
            var seen: Set<String> = []
            var result: [Combination] = []
            var attempts = 0
            while result.count < maxJobs, attempts < maxJobs * 50 {
                attempts += 1
                let combination = Combination(choices: parameters.map { $0.domain.draw(using: &generator) })
                if seen.insert(combination.key).inserted { result.append(combination) }
            }
            return result
        }
    }
}

extension SearchParameter.Domain {
    func draw(using generator: inout SplitMix64) -> Choice {
        switch self {
        case .values(let values):
            let index = Int(generator.nextIndex(below: UInt64(values.count)))
            return Choice(value: values[index], index: index)
        case .uniform(let low, let high):
            return Choice(value: .number(low + (high - low) * generator.nextUnit()), index: nil)
        case .logUniform(let low, let high):
            return Choice(value: .number(exp(log(low) + (log(high) - log(low)) * generator.nextUnit())), index: nil)
        case .intUniform(let low, let high):
            let span = UInt64(high - low) + 1
            return Choice(value: .number(Double(low + Int(generator.nextIndex(below: span)))), index: nil)
        }
    }
}

/// SplitMix64: small, seedable, and spelled out here (as are the draws from it), so a random
/// study with the same seed queues the same jobs on every platform.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1), from the top 53 bits.
    mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// In 0..<n (n ≥ 1): the high word of next() × n (a bias below n / 2⁶⁴).
    mutating func nextIndex(below n: UInt64) -> UInt64 {
        next().multipliedFullWidth(by: n).high
    }
}

// MARK: - Paths into a spec

/// A dotted path into a job spec with `[i]` for array elements: `optimizer.lr`, `model.layers[0].units`.
struct SpecPath: CustomStringConvertible {
    enum Component: Equatable {
        case key(String)
        case index(Int)
    }

    var components: [Component]

    /// Nil for text that is not a path (empty names, unbalanced brackets, a leading index).
    init?(_ text: String) {
        var components: [Component] = []
        for segment in text.split(separator: ".", omittingEmptySubsequences: false) {
            var rest = Substring(segment)
            let name = rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
            guard !name.isEmpty else { return nil }
            components.append(.key(String(name)))
            rest = rest.dropFirst(name.count)
            while !rest.isEmpty {
                guard rest.first == "[", let close = rest.firstIndex(of: "]"),
                      let index = Int(rest[rest.index(after: rest.startIndex)..<close]), index >= 0 else { return nil }
                components.append(.index(index))
                rest = rest[rest.index(after: close)...]
            }
        }
        guard !components.isEmpty else { return nil }
        self.components = components
    }

    /// The normalized text, in the notation of `SpecIssue` paths.
    var description: String { Self.text(components[...]) }

    static func text(_ components: ArraySlice<Component>) -> String {
        var text = ""
        for component in components {
            switch component {
            case .key(let name): text += text.isEmpty ? name : ".\(name)"
            case .index(let index): text += "[\(index)]"
            }
        }
        return text
    }

    /// Whether `issuePath` (a `SpecIssue` path) is this path or lies inside it.
    func contains(_ issuePath: String) -> Bool {
        let path = description
        return issuePath == path || issuePath.hasPrefix(path + ".") || issuePath.hasPrefix(path + "[")
    }

    struct Failure: Error { let message: String }

    /// Sets `value` at this path. The parent must exist, except that a missing object is created
    /// where a filled-in spec has one (`regularization` for `regularization.l2`); array elements
    /// are replaced, never appended.
    func set(_ value: JSONValue, in root: inout JSONValue) throws(Failure) {
        try set(value, depth: 0, in: &root, skeleton: Self.skeleton)
    }

    /// Sets `value` at `components[depth...]` below `node`, the value at `components[..<depth]`.
    private func set(_ value: JSONValue, depth: Int, in node: inout JSONValue, skeleton: JSONValue?) throws(Failure) {
        guard depth < components.count else {
            node = value
            return
        }
        let parent = Self.text(components[..<depth]), here = Self.text(components[...depth])
        switch components[depth] {
        case .key(let name):
            guard case .object(var fields) = node else {
                throw Failure(message: "\(parent) is \(node.kindName) in the spec, not an object; set the whole \"\(parent)\" instead")
            }
            let childSkeleton = skeleton?[name]
            var child = fields[name] ?? .null
            if child == .null, depth + 1 < components.count {
                // A section the posted spec leaves to its defaults: start it empty.
                guard case .object? = childSkeleton, case .key = components[depth + 1] else {
                    throw Failure(message: fields[name] == nil
                        ? "\(here) does not exist in the base spec, so \(description) cannot be set"
                        : "\(here) is null in the base spec; set the whole \"\(here)\" instead")
                }
                child = .object([:])
            }
            try set(value, depth: depth + 1, in: &child, skeleton: childSkeleton)
            fields[name] = child
            node = .object(fields)
        case .index(let index):
            guard case .array(var items) = node else {
                throw Failure(message: "\(parent) is \(node.kindName) in the spec, not an array")
            }
            guard items.indices.contains(index) else {
                throw Failure(message: "\(here) does not exist: \(parent) has \(items.count) element\(items.count == 1 ? "" : "s")")
            }
            var child = items[index]
            var childSkeleton: JSONValue?
            if case .array(let skeletonItems)? = skeleton, skeletonItems.indices.contains(index) { childSkeleton = skeletonItems[index] }
            try set(value, depth: depth + 1, in: &child, skeleton: childSkeleton)
            items[index] = child
            node = .array(items)
        }
    }

    /// A small valid spec with every default filled in: which sections are objects.
    static let skeleton: JSONValue? = {
        let minimal: JSONValue = ["dataset": ["builtin": "moons"], "model": ["layers": [["type": "dense", "units": 2]]]]
        return (try? JobSpec.parse(minimal))?.jsonValue
    }()
}

// MARK: - Problems of a study

/// Collects the problems of every combination once each. A problem of the base spec that only
/// some combinations have says which, with an example.
struct ProblemCollector {
    let combinationCount: Int
    private var order: [String] = []
    private var entries: [String: (path: String, message: String, combinations: [Int], label: String?)] = [:]
    static let limit = 50

    init(combinationCount: Int) { self.combinationCount = combinationCount }

    var isEmpty: Bool { order.isEmpty }

    mutating func add(path: String, message: String, combination: Int? = nil, label: String? = nil) {
        let key = path + "\u{0}" + message
        if entries[key] == nil {
            order.append(key)
            entries[key] = (path, message, [], label)
        }
        if let combination { entries[key]?.combinations.append(combination) }
    }

    var issues: [SpecIssue] {
        var issues = order.prefix(Self.limit).map { key -> SpecIssue in
            let entry = entries[key]!
            guard let first = entry.combinations.first, entry.combinations.count < combinationCount else {
                return SpecIssue(path: entry.path, message: entry.message)
            }
            let example = entry.label.map { "#\(first): \($0)" } ?? "#\(first)"
            return SpecIssue(path: entry.path, message: "\(entry.message) (in \(entry.combinations.count) of \(combinationCount) combinations, e.g. \(example))")
        }
        if order.count > Self.limit {
            issues.append(SpecIssue(path: "parameters", message: "and \(order.count - Self.limit) more problems"))
        }
        return issues
    }
}

// MARK: - The objective and ranking

enum ObjectiveMetric: String, CaseIterable, Sendable {
    case valLoss = "val_loss", valAccuracy = "val_accuracy", trainLoss = "train_loss", trainAccuracy = "train_accuracy"
    case testAccuracy = "test_accuracy"

    /// Accuracies are maximized, losses minimized.
    var defaultMode: ObjectiveMode { rawValue.hasSuffix("accuracy") ? .max : .min }

    /// The value of an epoch's metrics row (nil for test accuracy, which is the job's result).
    func value(of row: MetricsRow) -> Double? {
        let value: Double? = switch self {
        case .valLoss: row.valLoss
        case .valAccuracy: row.valAccuracy
        case .trainLoss: row.trainLoss
        case .trainAccuracy: row.trainAccuracy
        case .testAccuracy: nil
        }
        return value.flatMap { $0.isFinite ? $0 : nil }
    }
}

enum ObjectiveMode: String, CaseIterable, Sendable { case min, max }

struct Objective {
    var metric: ObjectiveMetric
    var mode: ObjectiveMode

    var jsonValue: JSONValue { ["metric": JSONValue(metric.rawValue), "mode": JSONValue(mode.rawValue)] }

    func isBetter(_ a: Double, than b: Double) -> Bool { mode == .min ? a < b : a > b }

    struct Ranked {
        var job: JobRecord
        /// The objective's value, nil when the job has none (yet).
        var value: Double?
        /// The metrics of the epoch with the best objective value (for `test_accuracy`, the
        /// job's best or last epoch), with the job's test accuracy.
        var best: JSONValue?
        /// Breaks ties of `value` (equal accuracies are common on small validation sets): the
        /// best row's validation loss, lower first.
        var validationLoss: Double?
    }

    /// Best first (equal values: lower validation loss first, then the order of creation);
    /// jobs without a value keep their order, after the others.
    func rank(_ jobs: [(job: JobRecord, metrics: [MetricsRow])]) -> [Ranked] {
        let entries = jobs.map { job, metrics -> Ranked in
            let testAccuracy = Self.testAccuracy(job)
            var row: MetricsRow?
            if metric == .testAccuracy {
                row = metrics.last { $0.epoch == job.bestEpoch } ?? metrics.last
            } else {
                for candidate in metrics {
                    guard let value = metric.value(of: candidate) else { continue }
                    if let current = row.flatMap(metric.value(of:)), !isBetter(value, than: current) { continue }
                    row = candidate
                }
            }
            let value = metric == .testAccuracy ? testAccuracy : row.flatMap(metric.value(of:))
            var best: JSONValue?
            if row != nil || testAccuracy != nil {
                func number(_ value: Double?) -> JSONValue { value.flatMap { $0.isFinite ? JSONValue($0) : nil } ?? .null }
                best = ["epoch": row.map { JSONValue($0.epoch) } ?? .null, "val_loss": number(row?.valLoss),
                        "val_accuracy": number(row?.valAccuracy), "train_loss": number(row?.trainLoss),
                        "train_accuracy": number(row?.trainAccuracy), "test_accuracy": number(testAccuracy)]
            }
            return Ranked(job: job, value: value, best: best, validationLoss: row?.valLoss.flatMap { $0.isFinite ? $0 : nil })
        }
        let scored = entries.enumerated().filter { $0.element.value != nil }.sorted { a, b in
            let (x, y) = (a.element.value!, b.element.value!)
            if x != y { return isBetter(x, than: y) }
            switch (a.element.validationLoss, b.element.validationLoss) {
            case let (p?, q?) where p != q: return p < q
            case (_?, nil): return true
            case (nil, _?): return false
            default: return a.offset < b.offset
            }
        }.map(\.element)
        return scored + entries.filter { $0.value == nil }
    }

    private static func testAccuracy(_ job: JobRecord) -> Double? {
        guard let text = job.result, case .number(let value)? = try? JSONValue.parse(Data(text.utf8))["test_accuracy"],
              value.isFinite else { return nil }
        return value
    }
}

// MARK: - JSON of a stored study

extension StudyRecord {
    var links: JSONValue { ["self": JSONValue("/v1/studies/\(id)")] }

    /// Running while any job is queued or running; then succeeded if any job succeeded, else
    /// failed if any failed, else cancelled.
    static func status(of jobs: [JobRecord]) -> String {
        let statuses = Set(jobs.map(\.status))
        if statuses.contains(.queued) || statuses.contains(.running) { return "running" }
        if statuses.contains(.succeeded) { return "succeeded" }
        if statuses.contains(.failed) { return "failed" }
        return "cancelled"
    }

    /// The fields the list and `GET /v1/studies/{id}` share.
    func summaryFields(jobs: [JobRecord]) -> [String: JSONValue] {
        ["id": JSONValue(id), "name": JSONValue(name), "status": JSONValue(Self.status(of: jobs)),
         "strategy": JSONValue(strategy), "objective": ["metric": JSONValue(objectiveMetric), "mode": JSONValue(objectiveMode)],
         "created_at": JSONValue(createdAt.rfc3339), "links": links]
    }
}

/// JSON text from the store as a value (null when absent).
func parsedJSON(_ text: String?) -> JSONValue {
    guard let text, let value = try? JSONValue.parse(Data(text.utf8)) else { return .null }
    return value
}
