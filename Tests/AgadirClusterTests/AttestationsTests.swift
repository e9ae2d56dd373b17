import AgadirCluster
import AgadirCore
import AgadirPlacement
import AgadirTestSupport
import Testing

/// The record of what peers' certificates attest, and its refusals.
@Suite struct AttestationsTests {
    let moroccan = Policy(
        name: "ma", replicationFactor: 2, selector: SiteSelector(labels: ["country": "MA"]), minSites: 2,
        readConsistency: .quorum, writeConsistency: .quorum, codec: .lz4)

    @Test func withoutACertificate_nothingIsRequired_andNothingRefused() {
        let a = Attestations(nodeID: "benguerir-1", own: nil)
        #expect(!a.required)
        #expect(a.refusal("paris-1", for: moroccan) == nil)
    }

    @Test func withACertificate_aPeerMustHaveShownOne_thatPermitsThePolicy() {
        let a = Attestations(nodeID: "benguerir-1", own: Attestation(site: "benguerir", labels: ["country": "MA"]))
        #expect(a.required)
        #expect(a.refusal("benguerir-1", for: moroccan) == nil)
        let unseen = a.refusal("casablanca-1", for: moroccan)
        #expect(unseen?.contains("no certificate") == true, "\(unseen ?? "")")
        a.record("casablanca-1", Attestation(site: "casablanca", labels: ["country": "MA"]))
        #expect(a.refusal("casablanca-1", for: moroccan) == nil)
        a.record("paris-1", Attestation(site: "paris", labels: ["country": "FR"]))
        let foreign = a.refusal("paris-1", for: moroccan)
        #expect(foreign?.contains("country=FR") == true && foreign?.contains("'ma'") == true, "\(foreign ?? "")")
        // A renewed certificate replaces the record.
        a.record("paris-1", Attestation(site: "paris", labels: ["country": "MA"]))
        #expect(a.refusal("paris-1", for: moroccan) == nil)
        #expect(["benguerir-1", "casablanca-1", "paris-1"].allSatisfy { a.of($0) != nil })
        #expect(a.of("settat-1") == nil)
    }

    @Test func ownAttestationAndRevocations_changeOnReload() {
        let a = Attestations(
            nodeID: "n", own: Attestation(site: "s", labels: ["country": "MA"]), revokedSerials: ["0a"])
        #expect(a.isRevoked(serial: "0A") && !a.isRevoked(serial: "0b"))
        a.replaceOwn(Attestation(site: "s", labels: ["country": "FR"]), revokedSerials: ["0b"])
        #expect(a.own?.labels == ["country": "FR"])
        #expect(!a.isRevoked(serial: "0a") && a.isRevoked(serial: "0b"))
        #expect(a.refusal("n", for: moroccan) != nil)
    }
}
