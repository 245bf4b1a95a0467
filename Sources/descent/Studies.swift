import ArgumentParser
import Foundation

/// `descent studies create FILE | show ID | list`: comparisons and hyperparameter searches.
struct StudiesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "studies", abstract: "Compare jobs and search hyperparameters: one job per combination, ranked by an objective.",
        subcommands: [Create.self, Show.self, List.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a study from a JSON file (or - for standard input) and queue its jobs.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The study: {\"name\", \"base\", \"search\", \"parameters\", \"objective\"}.") var file: String

        func run() async throws {
            let data = file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: file)
            guard let data else { throw ValidationError("cannot read \(file)") }
            let client = try options.client
            let answer = try await failing { try await client.json("POST", "/v1/studies", body: data, contentType: "application/json") }
            let jobs = answer["job_ids"] as? [String] ?? []
            print(answer["id"] as? String ?? "")
            FileHandle.standardError.write(Data("queued \(jobs.count) job\(jobs.count == 1 ? "" : "s"); follow with: descent studies show \(answer["id"] as? String ?? "ID")\n".utf8))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a study's jobs ranked by its objective, best first.")
        @OptionGroup var options: ClientOptions
        @Argument var id: String

        func run() async throws {
            let client = try options.client
            let study = try await failing { try await client.json("GET", "/v1/studies/\(id)") }
            if options.json {
                printJSON(study)
                return
            }
            let objective = study["objective"] as? [String: Any] ?? [:]
            let metric = objective["metric"] as? String ?? "val_loss"
            print("\(study["name"] as? String ?? "")  \(study["id"] as? String ?? "")  \(study["status"] as? String ?? "")  objective: \(metric) (\(objective["mode"] as? String ?? ""))")
            let jobs = study["jobs"] as? [[String: Any]] ?? []
            let rows = jobs.map { job -> [String] in
                let best = job["best"] as? [String: Any]
                return [
                    (job["rank"] as? Int).map(String.init) ?? "-",
                    job["id"] as? String ?? "",
                    job["status"] as? String ?? "",
                    formatNumber(job["objective_value"]),
                    (best?["epoch"] as? Int).map(String.init) ?? "-",
                    formatNumber(best?["val_loss"]),
                    formatNumber(best?["val_accuracy"]),
                    Self.describe(job["parameters"]),
                ]
            }
            printTable(header: ["#", "job", "status", metric, "epoch", "val_loss", "val_acc", "parameters"], rows: rows,
                       rightAligned: [0, 3, 4, 5, 6])
            if let best = study["best_job"] as? String { print("best: \(best)") }
        }

        /// `path=value, …` in path order, values as in job names: `0.001`, `sgd`, `sgd(lr=0.05, momentum=0.9)`.
        static func describe(_ parameters: Any?) -> String {
            guard let parameters = parameters as? [String: Any] else { return "" }
            return parameters.keys.sorted().map { "\($0)=\(describeValue(parameters[$0]!))" }.joined(separator: ", ")
        }

        static func describeValue(_ value: Any) -> String {
            switch value {
            case let text as String: return text
            case let items as [Any]: return "[" + items.map(describeValue).joined(separator: ", ") + "]"
            case let fields as [String: Any]:
                let type = fields["type"] as? String
                let rest = fields.keys.sorted().filter { !(type != nil && $0 == "type") }.map { "\($0)=\(describeValue(fields[$0]!))" }
                if let type { return rest.isEmpty ? type : "\(type)(\(rest.joined(separator: ", ")))" }
                return "{" + rest.joined(separator: ", ") + "}"
            case let number as NSNumber:
                if String(cString: number.objCType) == "c" { return number.boolValue ? "true" : "false" }  // JSON true/false
                let double = number.doubleValue
                return double.rounded() == double && abs(double) < 1e15 ? String(Int64(double)) : String(format: "%g", double)
            case is NSNull: return "null"
            default: return "\(value)"
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List studies, newest first.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            let client = try options.client
            let answer = try await failing { try await client.json("GET", "/v1/studies") }
            if options.json { return printJSON(answer) }
            let rows = (answer["studies"] as? [[String: Any]] ?? []).map { study -> [String] in
                let counts = study["counts"] as? [String: Int] ?? [:]
                let finished = (counts["succeeded"] ?? 0) + (counts["failed"] ?? 0) + (counts["cancelled"] ?? 0)
                let objective = study["objective"] as? [String: Any] ?? [:]
                return [
                    study["id"] as? String ?? "",
                    study["status"] as? String ?? "",
                    "\(finished)/\(study["job_count"] as? Int ?? 0)",
                    "\(objective["metric"] as? String ?? "") \(objective["mode"] as? String ?? "")",
                    study["name"] as? String ?? "",
                ]
            }
            if rows.isEmpty {
                print("no studies yet; create one with: descent studies create STUDY.json")
                return
            }
            printTable(header: ["study", "status", "done", "objective", "name"], rows: rows, rightAligned: [2])
        }
    }
}

/// A number to 4 significant digits, "-" for none.
private func formatNumber(_ value: Any?) -> String {
    guard let number = value as? Double ?? (value as? Int).map(Double.init) else { return "-" }
    return String(format: "%.4g", number)
}

/// Columns padded to their widest cell, separated by two spaces.
private func printTable(header: [String], rows: [[String]], rightAligned: Set<Int> = []) {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    for row in all {
        let cells = row.enumerated().map { column, cell -> String in
            let padding = String(repeating: " ", count: widths[column] - cell.count)
            if column == row.count - 1 { return cell }  // no trailing spaces
            return rightAligned.contains(column) ? padding + cell : cell + padding
        }
        print(cells.joined(separator: "  "))
    }
}
