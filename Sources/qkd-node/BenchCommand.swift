import ArgumentParser

/// `qkd-node bench <workload>`: each workload prints one JSON object
/// `{"workload": ..., "results": [{"metric", "value", "unit", "baseline", "ratio"}]}`,
/// with a baseline measured in the same run. Each workload lives in its own file, Bench<Name>.swift.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure a workload against a baseline measured in the same run.",
        subcommands: [
            BenchMacCommand.self,
            BenchPool.self,
            BenchSiftCommand.self,
            BenchReconcileCommand.self,
            BenchAmplifyCommand.self,
            BenchPipelineCommand.self,
            BenchLinkCommand.self,
            BenchPipelinePeerCommand.self,  // hidden: a node of `bench pipeline --tcp`
            BenchHandshakeCommand.self,
            BenchCascadeScanCommand.self,  // hidden: Cascade schedule tuning
        ]
    )
}
