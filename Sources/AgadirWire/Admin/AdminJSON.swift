import AgadirCore

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The JSON of admin bodies (ADMIN requests and answers, and the peer requests that carry
/// admin state: NODE_STATUS, RESIDENCY_AUDIT, REBALANCE_SET, REPAIR_START, MAINTENANCE).
/// One encoder and one decoder for the server, the CLI, the lab and the tests, so the
/// schema (the `Codable` types of this folder) cannot drift between them.
public enum AdminJSON {
    /// Sorted keys, pretty-printed (one line with `pretty` false): what `--json` prints.
    public static func encode(_ value: some Encodable, pretty: Bool = true) throws(AgadirError) -> [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting =
            pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try enc.encode(value))
        } catch {
            throw AgadirError(.internalError, "an admin body does not encode: \(error)")
        }
    }

    /// An empty body decodes as `{}`.
    public static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], _ what: String) throws(AgadirError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes.isEmpty ? Array("{}".utf8) : bytes))
        } catch {
            throw AgadirError(.invalidArgument, "\(what) is not the expected JSON: \(error)")
        }
    }
}
