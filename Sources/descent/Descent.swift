import ArgumentParser

@main
struct Descent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "descent",
        abstract: "Training as a service: queue neural-network training jobs, watch them, download and query the models.",
        subcommands: [
            Serve.self, DatasetsCommand.self, Submit.self, Status.self, Watch.self, Download.self, Report.self, Cancel.self, StudiesCommand.self, TokenCommand.self, WebhookSecretCommand.self, Bench.self, Worker.self,
        ])
}
