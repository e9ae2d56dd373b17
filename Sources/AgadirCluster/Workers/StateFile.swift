import AgadirCore
import AgadirStore
import Foundation

/// A worker's state that survives a restart: one JSON file in the data directory
/// (`rebalance.json`, `scrub.json`), read once at start and replaced whole on every save
/// (`AtomicFile`: the old content or the new, never a mix).
struct StateFile<Record: Codable>: Sendable {
    let path: String
    /// What the operator is told happens when the file is moved away (it does not decode).
    let ifMovedAway: String

    init(dataDir: String, name: String, ifMovedAway: String) {
        self.path = (dataDir as NSString).appendingPathComponent(name)
        self.ifMovedAway = ifMovedAway
    }

    /// The saved record, `initial` when there is none; `.corruptData` naming the file when it
    /// does not decode.
    func load(or initial: Record) throws(AgadirError) -> Record {
        guard let data = FileManager.default.contents(atPath: path) else { return initial }
        do {
            return try JSONDecoder().decode(Record.self, from: data)
        } catch {
            throw AgadirError(.corruptData, "\(path) does not decode (\(error)); move it away: \(ifMovedAway)")
        }
    }

    func save(_ record: Record) throws(AgadirError) {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        guard let data = try? enc.encode(record) else {
            throw AgadirError(.internalError, "the state saved in \(path) does not encode")
        }
        try AtomicFile.save(Array(data), to: path)
    }
}
