import AgadirServer
import Testing

@Suite("Connection admission")
struct ConnectionAdmissionTests {
    @Test func oneAddress_getsItsShare_otherAddressesTheRest_membersTheirReserve() {
        var a = ConnectionAdmission(limits: .init(maxConnections: 10, maxPerAddress: 4, peerReserve: 2))
        for _ in 0..<4 { #expect(a.admit(address: "10.0.0.9", fromClusterMember: false) == .admitted(peerSlot: false)) }
        guard case .refused(let why) = a.admit(address: "10.0.0.9", fromClusterMember: false) else {
            Issue.record("a fifth connection from one address was admitted")
            return
        }
        #expect(why.contains("10.0.0.9") && why.contains("4 per address"))
        for i in 0..<6 {
            #expect(a.admit(address: "10.0.1.\(i)", fromClusterMember: false) == .admitted(peerSlot: false))
        }
        // Every client slot is taken: another client is refused, a member is not.
        guard case .refused = a.admit(address: "10.0.2.1", fromClusterMember: false) else {
            Issue.record("an 11th client was admitted")
            return
        }
        #expect(a.admit(address: "10.0.0.9", fromClusterMember: true) == .admitted(peerSlot: true))
        #expect(a.admit(address: "10.0.3.3", fromClusterMember: true) == .admitted(peerSlot: true))
        guard case .refused = a.admit(address: "10.0.3.4", fromClusterMember: true) else {
            Issue.record("a member beyond the reserve was admitted while every client slot is taken")
            return
        }
        #expect(a.clients == 10 && a.peers == 2)
    }

    @Test func releasing_givesTheSlotBack_toTheSameKind() {
        var a = ConnectionAdmission(limits: .init(maxConnections: 2, maxPerAddress: 1, peerReserve: 1))
        #expect(a.admit(address: "x", fromClusterMember: false) == .admitted(peerSlot: false))
        #expect(a.admit(address: "x", fromClusterMember: false) != .admitted(peerSlot: false))
        a.release(address: "x", peerSlot: false)
        #expect(a.byAddress["x"] == nil && a.clients == 0)
        #expect(a.admit(address: "x", fromClusterMember: false) == .admitted(peerSlot: false))
        #expect(a.admit(address: "m", fromClusterMember: true) == .admitted(peerSlot: true))
        // A member past its reserve uses a client slot, not bound by the per-address cap.
        #expect(a.admit(address: "x", fromClusterMember: true) == .admitted(peerSlot: false))
        a.release(address: "m", peerSlot: true)
        #expect(a.peers == 0 && a.clients == 2)
    }
}
