import AgadirCore
import Foundation

// MARK: - Access keys (docs/security.md, "Access keys")

extension NodeStore {
    /// Applies the record if its version is newer than the stored one for its id (or none is
    /// stored). Returns true when applied. Durable on return. `.invalidArgument` for a record
    /// that does not validate; `.storageFull` for a new id once `maxAccessKeys` are stored.
    public func mergeAccessKey(_ record: AccessKeyRecord) async throws(AgadirError) -> Bool {
        try record.validate()
        let encoded = try Self.encode(record)
        defer { accessKeyChanges.wrappingAdd(1, ordering: .sequentiallyConsistent) }
        guard case .applied(let applied) = try await write(.mergeAccessKey(record, encoded: encoded)) else {
            throw AgadirError(.internalError, "access key write got a result of the wrong kind")
        }
        return applied
    }

    /// Moves on every write to the access keys (after the write).
    public var accessKeyGeneration: UInt64 { accessKeyChanges.load(ordering: .sequentiallyConsistent) }

    /// Every access key record, deleted ones included, sorted by id.
    public func accessKeys() async throws(AgadirError) -> [AccessKeyRecord] {
        try await blocking { [readers] () throws(AgadirError) -> [AccessKeyRecord] in
            try readers.withConnection { db throws(AgadirError) -> [AccessKeyRecord] in
                var rows: [[UInt8]] = []
                try db.forEachRow(
                    "SELECT record FROM access_keys ORDER BY id LIMIT ?", [.int(Int64(Self.maxAccessKeys + 1))]
                ) { row in
                    rows.append(row.blob(0))
                    return true
                }
                var out: [AccessKeyRecord] = []
                for bytes in rows { out.append(try Self.decode(bytes)) }
                return out
            }
        }
    }

    static func encode(_ record: AccessKeyRecord) throws(AgadirError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(record), data.count <= AccessKeyRecord.maxEncodedBytes else {
            throw AgadirError(
                .invalidArgument,
                "access key \(record.id) does not encode within \(AccessKeyRecord.maxEncodedBytes) bytes")
        }
        return Array(data)
    }

    static func decode(_ bytes: [UInt8]) throws(AgadirError) -> AccessKeyRecord {
        do {
            return try JSONDecoder().decode(AccessKeyRecord.self, from: Data(bytes))
        } catch {
            throw AgadirError(.corruptData, "an access key record does not decode: \(error)")
        }
    }
}
