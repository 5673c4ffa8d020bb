import GRDB
import QKDCrypto

extension KeyPool {
    /// The largest round id absorbed into this pool, or nil if none was: a node resuming a link
    /// picks its next round id above it (round ids are unique per link, Spec/keypool.md).
    /// - Returns: the id.
    /// - Throws: a storage error.
    public func lastAbsorbedRoundID() throws -> UInt64? {
        do {
            return try db.read { db in
                try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM round").map { UInt64(bitPattern: $0) }
            }
        } catch {
            throw storageError(error, "reading the last absorbed round")
        }
    }
}
