import AgadirCore
import Testing

@testable import AgadirPlacement

/// What a certificate attests against what a layout claims (docs/security.md, "Attested
/// residency").
@Suite struct AttestationTests {
    let moroccan = policy("ma", rf: 2, minSites: 2, selector: SiteSelector(labels: ["country": "MA"]))
    let listed = policy("listed", rf: 1, selector: SiteSelector(sites: ["benguerir"]))

    @Test func permits_followsTheAttestedSiteAndLabels_notTheLayouts() {
        #expect(Attestation(site: "benguerir", labels: ["country": "MA"]).permits(moroccan))
        #expect(Attestation(site: "benguerir", labels: ["country": "MA", "tier": "4"]).permits(moroccan))
        #expect(!Attestation(site: "paris", labels: ["country": "FR"]).permits(moroccan))
        #expect(!Attestation(site: "paris", labels: [:]).permits(moroccan))
        #expect(Attestation(site: "benguerir").permits(listed))
        #expect(!Attestation(site: "settat", labels: ["country": "MA"]).permits(listed))
        #expect(Attestation(site: "paris").permits(policy("any", rf: 1)))
    }

    @Test func attestationGap_namesAMovedSite_andEveryUnattestedLabel() {
        let l = layout(
            sites: [
                SiteSpec(name: "benguerir", labels: ["country": "MA"]),
                SiteSpec(name: "paris", labels: ["country": "MA", "tier": "4"]),
            ],
            nodes: nodes(site: "benguerir", count: 1) + nodes(site: "paris", count: 1))
        // Agrees: nothing to say.
        #expect(
            l.attestationGap(node: "benguerir-1", attested: Attestation(site: "benguerir", labels: ["country": "MA"]))
                == nil)
        // More labels attested than claimed: fine.
        #expect(
            l.attestationGap(
                node: "benguerir-1", attested: Attestation(site: "benguerir", labels: ["country": "MA", "x": "y"]))
                == nil)
        // A label the certificate does not carry, or carries with another value.
        let relabelled = l.attestationGap(
            node: "paris-1", attested: Attestation(site: "paris", labels: ["country": "FR"]))
        #expect(relabelled?.contains("country=MA,tier=4") == true, "\(relabelled ?? "")")
        #expect(relabelled?.contains("paris-1") == true)
        // A node placed in another site than its certificate's.
        let moved = l.attestationGap(
            node: "paris-1", attested: Attestation(site: "benguerir", labels: ["country": "MA"]))
        #expect(moved?.contains("attests site 'benguerir'") == true, "\(moved ?? "")")
        // A node the layout does not have claims nothing.
        #expect(l.attestationGap(node: "settat-1", attested: Attestation(site: "x")) == nil)
    }

    @Test func unattested_isSortedByKey() {
        let a = Attestation(site: "s", labels: ["b": "1"])
        let missing = a.unattested(["c": "3", "a": "1", "b": "1"])
        #expect(missing.map(\.key) == ["a", "c"])
        #expect(missing.map(\.value) == ["1", "3"])
    }
}
