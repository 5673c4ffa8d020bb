import ArgumentParser
import QKDCrypto

@main
struct QKDNodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qkd-node",
        abstract: "The classical side of a QKD link: authenticated channel, key pool, BB84 post-processing.",
        subcommands: [DemoCommand.self, RunCommand.self, SelftestCommand.self, BenchCommand.self, PoolCommand.self, KeysCommand.self, PSKCommand.self,
                      FaultProxyCommand.self, SessionTortureCommand.self]
    )
}
