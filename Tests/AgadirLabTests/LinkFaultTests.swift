import AgadirCore
import AgadirLab
import Testing

@Suite struct LinkFaultTests {
    static let nodes: [(name: String, site: String)] = [
        ("benguerir-1", "benguerir"), ("benguerir-2", "benguerir"), ("casablanca-1", "casablanca"),
        ("settat-1", "settat"),
    ]

    @Test func partitionsParseSitesAndNodes_andRefuseOverlapsAndStrangers() throws {
        let groups = try PartitionSpec.parse(["benguerir,casablanca-1", "|", "settat"], nodes: Self.nodes)
        #expect(groups == [["benguerir-1", "benguerir-2", "casablanca-1"], ["settat-1"]])
        #expect(
            try PartitionSpec.parse(["benguerir-1|settat-1"], nodes: Self.nodes) == [["benguerir-1"], ["settat-1"]])
        for bad in [["benguerir"], ["benguerir", "|"], ["benguerir", "|", "benguerir-1"], ["mars", "|", "settat"]] {
            #expect(throws: AgadirError.self) { try PartitionSpec.parse(bad, nodes: Self.nodes) }
        }
        #expect(try PartitionSpec.millis("30ms") == 30)
        #expect(try PartitionSpec.millis("2s") == 2000)
        #expect(try PartitionSpec.percent("1.5%") == 1.5)
        #expect(throws: AgadirError.self) { try PartitionSpec.millis("fast") }
        #expect(throws: AgadirError.self) { try PartitionSpec.percent("150%") }
    }

    @Test func aPartitionCutsBetweenGroupsOnly_oneWayOnlyForward_andHealKeepsDegradations() {
        var faults = LabFaults()
        faults.partition([["a", "b"], ["c"]], oneWay: false)
        #expect(faults.fault(from: "a", to: "c").cut && faults.fault(from: "c", to: "b").cut)
        #expect(!faults.fault(from: "a", to: "b").cut)
        faults.heal()
        #expect(faults.links.isEmpty)

        faults.partition([["a"], ["b", "c"]], oneWay: true)
        #expect(faults.fault(from: "a", to: "b").cut && faults.fault(from: "a", to: "c").cut)
        #expect(!faults.fault(from: "b", to: "a").cut)

        faults.degrade(between: ["a"], and: ["b"], like: LinkFault(delayMillis: 30, jitterMillis: 5, lossPercent: 1))
        #expect(faults.fault(from: "b", to: "a").delayMillis == 30)
        faults.heal()
        #expect(!faults.fault(from: "a", to: "b").cut)
        #expect(faults.fault(from: "a", to: "b").lossPercent == 1)
        #expect(faults.fault(from: "a", to: "c").isClear)
        faults.degrade(between: ["a"], and: ["b"], like: LinkFault())
        #expect(faults.links.isEmpty)
        #expect(faults.summary.isEmpty)
    }

    @Test func delaysStayWithinTheJitter_lossDropsDatagrams_andStreamsKeepTheirOrder() {
        let f = LinkFault(delayMillis: 30, jitterMillis: 5, lossPercent: 10)
        #expect(f.delay(draw: 0) == 25)
        #expect(f.delay(draw: 0.5) == 30)
        #expect(f.delay(draw: 0.999) == 35)
        #expect(LinkFault(delayMillis: 2, jitterMillis: 10).delay(draw: 0) == 0)
        #expect(f.drops(draw: 0.05) && !f.drops(draw: 0.5))
        #expect(LinkFault(cut: true).drops(draw: 0.99))
        // A lost stream piece comes a retransmission later; the next is never before it.
        let lost = f.streamDelivery(now: 1000, previous: 0, draw: 0.5, lossDraw: 0.01)
        #expect(lost == 1000 + 30 + Int64(LinkFault.retransmitMillis))
        let next = f.streamDelivery(now: 1001, previous: lost, draw: 0, lossDraw: 0.9)
        #expect(next == lost)
        #expect(throws: AgadirError.self) { try LinkFault(delayMillis: -1).validate() }
        #expect(throws: AgadirError.self) { try LinkFault(lossPercent: 101).validate() }
    }
}
