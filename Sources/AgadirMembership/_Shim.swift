// TEMPORARY, not committed: replaced by GossipCodec.swift and Keyring.swift.
public enum GossipCodec {
    public static func encodedSize(_ update: GossipUpdate) -> Int {
        switch update {
        case .alive(let m): 40 + m.nodeID.utf8.count + m.site.utf8.count + m.clientAddress.utf8.count + m.peerAddress.utf8.count
        case .suspect(let id, _, let f), .dead(let id, _, let f): 12 + id.utf8.count + f.utf8.count
        case .left(let id, _): 10 + id.utf8.count
        }
    }
    public static func headerSize(sender: String, senderAddress: String, probe: ProbeMessage?) -> Int {
        var n = 4 + sender.utf8.count + senderAddress.utf8.count
        switch probe {
        case nil: n += 1
        case .ping(_, let t): n += 7 + t.utf8.count
        case .pingRequest(_, let t, let a): n += 9 + t.utf8.count + a.utf8.count
        case .ack, .nack: n += 5
        }
        return n
    }
}
public enum Keyring { public static let overhead = 26 }
