import AgadirCore
import AgadirPlacement
import Testing

@Test func selector_parsesEveryDocumentedForm_andPrintsItBackCanonically() throws {
    let cases: [(String, SiteSelector, String)] = [
        ("any", .any, "any"),
        (" ANY ", .any, "any"),
        ("country=MA", SiteSelector(labels: ["country": "MA"]), "country=MA"),
        ("tier=4,country=MA", SiteSelector(labels: ["country": "MA", "tier": "4"]), "country=MA,tier=4"),
        ("country = MA ; tier=4", SiteSelector(labels: ["country": "MA", "tier": "4"]), "country=MA,tier=4"),
        ("sites=casablanca,benguerir", SiteSelector(sites: ["benguerir", "casablanca"]), "sites=benguerir,casablanca"),
        ("sites=b,a,b", SiteSelector(sites: ["a", "b"]), "sites=a,b"),
        (
            "country=MA;sites=a,b", SiteSelector(labels: ["country": "MA"], sites: ["a", "b"]),
            "sites=a,b;country=MA"
        ),
        ("sites=a,b;country=MA", SiteSelector(labels: ["country": "MA"], sites: ["a", "b"]), "sites=a,b;country=MA"),
    ]
    for (text, expected, canonical) in cases {
        let parsed = try SiteSelector(parsing: text)
        #expect(parsed == expected, "\(text)")
        #expect(parsed.description == canonical, "\(text)")
        #expect(try SiteSelector(parsing: parsed.description) == parsed, "\(text) round trip")
    }
    #expect(SiteSelector.any.description == "any")
}

@Test func selector_refusesBadTextWithAHelpfulMessage() {
    let bad = [
        "", "  ", "country", "country=", "=MA", "country=MA;;tier=4", "any;country=MA", "sites=", "sites=a,,b",
        "sites=a;sites=b", "country=MA,sites=a", "country=MA,country=FR", "coun try=MA", "country=M,A",
        "sites=bad/name", "k=\u{7}",
    ]
    for text in bad {
        let error = expectError(.invalidArgument) { () throws(AgadirError) in try SiteSelector(parsing: text) }
        #expect(error?.message.contains("write 'any'") == true, "\(text): \(error?.message ?? "")")
    }
}

@Test func selector_matchesAllLabelsAndTheSiteList() {
    let ma = ["country": "MA", "tier": "4"]
    #expect(SiteSelector.any.matches(site: "anything", siteLabels: [:]))
    #expect(SiteSelector(labels: ["country": "MA"]).matches(site: "x", siteLabels: ma))
    #expect(!SiteSelector(labels: ["country": "MA"]).matches(site: "x", siteLabels: ["country": "FR"]))
    #expect(!SiteSelector(labels: ["country": "MA"]).matches(site: "x", siteLabels: [:]))
    #expect(!SiteSelector(labels: ["country": "MA", "tier": "3"]).matches(site: "x", siteLabels: ma))
    let listed = SiteSelector(labels: ["tier": "4"], sites: ["benguerir", "settat"])
    #expect(listed.matches(site: "settat", siteLabels: ma))
    #expect(!listed.matches(site: "casablanca", siteLabels: ma))
    #expect(!listed.matches(site: "settat", siteLabels: ["country": "MA"]))
}

@Test func policy_validate_namesTheBadField() {
    let good = Policy(
        name: "sovereign-ma", replicationFactor: 3, selector: SiteSelector(labels: ["country": "MA"]), minSites: 2,
        readConsistency: .quorum, writeConsistency: .localQuorum, codec: .zlib)
    #expect(throws: Never.self) { try good.validate() }
    var p = good
    p.name = "Bad_Name"
    #expect(
        expectError(.invalidArgument) { () throws(AgadirError) in try p.validate() }?.message.contains("policy name")
            == true)
    p = good
    p.replicationFactor = 8
    #expect(
        expectError(.invalidArgument) { () throws(AgadirError) in try p.validate() }?.message.contains(
            "replicationFactor") == true)
    p = good
    p.minSites = 4
    #expect(
        expectError(.invalidArgument) { () throws(AgadirError) in try p.validate() }?.message.contains("minSites")
            == true)
    p = good
    p.minSites = 0
    #expect(
        expectError(.invalidArgument) { () throws(AgadirError) in try p.validate() }?.message.contains("minSites")
            == true)
    p = good
    p.selector = SiteSelector(sites: ["benguerir"])
    #expect(
        expectError(.invalidArgument) { () throws(AgadirError) in try p.validate() }?.message.contains(
            "allows only 1 site") == true)
    p = good
    p.selector = SiteSelector(labels: ["country": "M,A"])
    #expect(
        expectError(.invalidArgument) { () throws(AgadirError) in try p.validate() }?.message.contains("selector")
            == true)
}

@Test func builtInDefault_growsWithTheStorageNodesUpToThree() {
    #expect(Policy.builtInDefault(storageNodes: 0).replicationFactor == 1)
    #expect(Policy.builtInDefault(storageNodes: 1).replicationFactor == 1)
    #expect(Policy.builtInDefault(storageNodes: 2).replicationFactor == 2)
    #expect(Policy.builtInDefault(storageNodes: 3).replicationFactor == 3)
    #expect(Policy.builtInDefault(storageNodes: 400).replicationFactor == 3)
    let d = Policy.builtInDefault(storageNodes: 5)
    #expect(d.name == "default" && d.selector == .any && d.minSites == 1 && d.codec == .lz4)
    #expect(d.readConsistency == .quorum && d.writeConsistency == .quorum)
    #expect(throws: Never.self) { try d.validate() }
}

@Test func policyNames_takeOneToSixtyThreeLowercaseCharacters() {
    for good in ["ma", "m", "eu-west", "global", String(repeating: "a", count: 63), "x1"] {
        #expect(Policy.isValidName(good), "\(good)")
    }
    for bad in ["", "-ma", "ma-", "MA", "m.a", "m a", String(repeating: "a", count: 64), "é"] {
        #expect(!Policy.isValidName(bad), "\(bad)")
    }
}
