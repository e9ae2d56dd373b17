/// A binary min-heap of timed events. Ties on time are broken by insertion order (a
/// sequence number), so the order in which events run is a total order that depends
/// only on what was scheduled: no two runs of the same configuration can differ.
struct EventQueue<Payload> {
    private struct Entry {
        var time: Int64
        var sequence: UInt64
        var payload: Payload

        func precedes(_ other: Entry) -> Bool {
            time != other.time ? time < other.time : sequence < other.sequence
        }
    }

    private var heap: [Entry] = []
    private var nextSequence: UInt64 = 0

    var count: Int { heap.count }
    var isEmpty: Bool { heap.isEmpty }
    /// Time of the earliest event.
    var nextTime: Int64? { heap.first?.time }

    mutating func push(at time: Int64, _ payload: Payload) {
        nextSequence += 1
        heap.append(Entry(time: time, sequence: nextSequence, payload: payload))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].precedes(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes and returns the earliest event.
    mutating func pop() -> (time: Int64, payload: Payload)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var parent = 0
        let n = heap.count
        while true {
            let left = 2 * parent + 1
            guard left < n else { break }
            var best = left
            let right = left + 1
            if right < n, heap[right].precedes(heap[left]) { best = right }
            guard heap[best].precedes(heap[parent]) else { break }
            heap.swapAt(parent, best)
            parent = best
        }
        return (top.time, top.payload)
    }
}
