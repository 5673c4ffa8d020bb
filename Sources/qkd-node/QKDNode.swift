import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import QKDCrypto

@main
struct QKDNodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qkd-node",
        abstract: "The classical side of a QKD link: authenticated channel, key pool, BB84 post-processing.",
        subcommands: [DemoCommand.self, RunCommand.self, SelftestCommand.self, BenchCommand.self, PoolCommand.self, KeysCommand.self, PSKCommand.self,
                      FaultProxyCommand.self, SessionTortureCommand.self]
    )

    static func main() async {
        MemoryRetention.keepFreedMemory()
        await main(nil)
    }
}

/// A QKD node runs rounds back to back, and each round allocates and frees the same large
/// buffers (megabytes per 2^20-bit block). Cascade's permutation map is recycled by its own
/// pool (`qkd_cascade_alloc`, public data only); the rest (pass keys, slot arrays, the Swift
/// side's keys and sifting buffers) is not. With glibc's defaults each is a fresh mapping, or
/// trimmed from the heap when freed, so every round faults its pages in again, zero-filled by
/// the kernel: 12.6% of `bench cascade-scan` at QBER 8% ran in the kernel, 5.0% with the
/// settings below (perf). The process keeps freed memory for reuse instead (its footprint stays
/// at its peak; freed key buffers are wiped before they are freed, as before). This is the
/// executable's choice; the library leaves the process's allocator alone, and software
/// embedding it can do the same (README, "Memory").
enum MemoryRetention {
    static func keepFreedMemory() {
        #if canImport(Glibc)
        // Allocations up to 32 MB (glibc's maximum for this setting) come from the heap, and
        // the heap is trimmed only above 1 GB of free space.
        // glibc's mallopt and the parameter numbers of <malloc.h> (part of its ABI); the Glibc
        // module does not include that header.
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        let trimThreshold: Int32 = -1, mmapThreshold: Int32 = -3
        _ = mallopt(mmapThreshold, 32 << 20)
        _ = mallopt(trimThreshold, 1 << 30)
        #endif
    }
}
