import Foundation

/// One line of a torture history (`agadir-lab torture`, docs/consistency.md): an operation
/// a client began (`invoke`) or how it ended (`ok`: acknowledged; `fail`: refused, it may
/// still have taken effect, as a failed Agadir write may; `info`: no answer at all).
/// Jepsen's shape: every completion follows its invocation, with the same `process` and
/// `index`.
public struct HistoryOp: Codable, Sendable, Hashable {
    public enum Kind: String, Codable, Sendable { case invoke, ok, fail, info }
    public enum Function: String, Codable, Sendable { case put, get, delete, list }

    /// The client that ran it; each client runs one operation at a time.
    public var process: Int
    /// The operation's number in the whole history (shared by its invocation and completion).
    public var index: Int
    public var kind: Kind
    public var f: Function
    public var key: String?
    /// put: the unique value written; get (ok): the value read, nil when the key is absent.
    public var value: String?
    /// list (ok): the keys listed.
    public var keys: [String]?
    /// The version the node answered (put, delete, get), as `ObjectVersion.description`.
    public var version: String?
    /// The node the client asked.
    public var node: String?
    /// Nanoseconds since the history began (monotonic).
    public var time: UInt64
    /// For fail and info: what went wrong.
    public var error: String?

    public init(
        process: Int, index: Int, kind: Kind, f: Function, key: String? = nil, value: String? = nil,
        keys: [String]? = nil, version: String? = nil, node: String? = nil, time: UInt64, error: String? = nil
    ) {
        self.process = process
        self.index = index
        self.kind = kind
        self.f = f
        self.key = key
        self.value = value
        self.keys = keys
        self.version = version
        self.node = node
        self.time = time
        self.error = error
    }
}

/// A history as JSON lines: one `HistoryOp` per line.
public enum HistoryFile {
    public static func encode(_ op: HistoryOp) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(op)) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// The operations of `text`; a line that does not decode is an error naming it.
    public static func decode(_ text: String) throws -> [HistoryOp] {
        var out: [HistoryOp] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            do {
                out.append(try JSONDecoder().decode(HistoryOp.self, from: Data(line.utf8)))
            } catch {
                throw HistoryError(message: "history line \(n + 1) does not decode: \(error)")
            }
        }
        return out
    }
}

public struct HistoryError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
