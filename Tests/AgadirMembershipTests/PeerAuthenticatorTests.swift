import AgadirCore
import AgadirMembership
import Testing

@Suite struct PeerAuthenticatorTests {
    static let transcript = PeerAuthenticator.Transcript(
        dialerNonce: Array(repeating: 1, count: 32), listenerNonce: Array(repeating: 2, count: 32),
        dialerID: "benguerir-1", listenerID: "settat-2")

    @Test func proofs_verifyOnlyForTheirRoleTranscriptAndSecret() throws {
        let a = try PeerAuthenticator(clusterName: "agadir", secrets: ["0123456789abcdef0123456789abcdef"])
        let b = try PeerAuthenticator(clusterName: "agadir", secrets: ["0123456789abcdef0123456789abcdef"])
        let proof = a.proof(.server, Self.transcript)
        #expect(proof.count == 32)
        #expect(b.verify(proof, .server, Self.transcript))
        #expect(!b.verify(proof, .client, Self.transcript))
        var other = Self.transcript
        other.dialerID = "paris-1"
        #expect(!b.verify(proof, .server, other))
        var flipped = proof
        flipped[5] ^= 1
        #expect(!b.verify(flipped, .server, Self.transcript))
        #expect(!b.verify(Array(proof.prefix(31)), .server, Self.transcript))

        let wrongSecret = try PeerAuthenticator(clusterName: "agadir", secrets: ["ffffffffffffffffffffffffffffffff"])
        #expect(!wrongSecret.verify(proof, .server, Self.transcript))
        let wrongCluster = try PeerAuthenticator(clusterName: "other", secrets: ["0123456789abcdef0123456789abcdef"])
        #expect(!wrongCluster.verify(proof, .server, Self.transcript))
    }

    @Test func rotation_acceptsProofsOfEverySecret_andProvesWithThePrimary() throws {
        let old = "0123456789abcdef0123456789abcdef"
        let new = "fedcba9876543210fedcba9876543210"
        let rotated = try PeerAuthenticator(clusterName: "agadir", secrets: [new, old])
        let oldNode = try PeerAuthenticator(clusterName: "agadir", secrets: [old])
        #expect(rotated.verify(oldNode.proof(.client, Self.transcript), .client, Self.transcript))
        #expect(!oldNode.verify(rotated.proof(.server, Self.transcript), .server, Self.transcript))
        #expect(throws: AgadirError.self) { try PeerAuthenticator(clusterName: "agadir", secrets: ["short"]) }
    }
}
