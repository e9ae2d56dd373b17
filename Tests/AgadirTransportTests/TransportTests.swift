import AgadirCore
import AgadirTestSupport
import AgadirTransport
import AgadirWire
import NIOCore
import NIOEmbedded
import Testing

@Suite struct FrameCodecTests {
    func sampleFrames() -> [Frame] {
        var f = Fields()
        f.set(.bucket, "abc")
        f.set(.key, "some/key")
        f.set(.size, u64: 5)
        return [
            .request(id: 1, opcode: .put, fields: f, payload: ByteBuffer(bytes: [1, 2, 3]), end: false),
            .data(id: 1, payload: ByteBuffer(bytes: Array(repeating: 7, count: 40_000)), end: false),
            .data(id: 1, payload: ByteBuffer(), end: true),
            .response(id: 1, opcode: Opcode.put.rawValue, fields: f, end: true),
            .error(id: 9, opcode: 6, AgadirError(.noSuchKey, "nope"), responseStarted: true),
        ]
    }

    @Test func frames_splitAtEveryRandomBoundary_decodeToTheSameFrames() throws {
        let frames = sampleFrames()
        let bytes = frames.flatMap { FrameEncoder.encode($0) }
        var rng = SplitMix64(seed: 11)
        for _ in 0..<50 {
            let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(limits: .default)))
            var offset = 0
            while offset < bytes.count {
                let n = min(bytes.count - offset, Int(rng.next() % 9000) + 1)
                try channel.writeInbound(ByteBuffer(bytes: bytes[offset..<offset + n]))
                offset += n
            }
            var decoded: [Frame] = []
            while let f = try channel.readInbound(as: Frame.self) { decoded.append(f) }
            #expect(decoded.count == frames.count)
            for (a, b) in zip(decoded, frames) {
                #expect(a.header.kind == b.header.kind)
                #expect(a.header.requestID == b.header.requestID)
                #expect(a.header.status == b.header.status)
                #expect(a.header.isEndStream == b.header.isEndStream)
                #expect(a.fields == b.fields)
                #expect(a.payload == b.payload)
            }
            _ = try channel.finish()
        }
    }

    @Test func errorFrames_carryCodeAndMessage() {
        let f = Frame.error(id: 3, opcode: 6, AgadirError(.corruptChunk, "chunk ab is corrupt"), responseStarted: false)
        #expect(f.header.kind == .response)
        #expect(f.error == AgadirError(.corruptChunk, "chunk ab is corrupt"))
        #expect(Frame.error(id: 3, opcode: 6, AgadirError(.ioError, "x"), responseStarted: true).header.kind == .abort)
    }

    @Test func decoder_refusesAnOversizedFrameFromItsHeaderAlone() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(limits: .default)))
        let header = FrameHeader(kind: .data, requestID: 1, payloadLength: UInt32(64 << 20)).encoded()
        #expect(throws: AgadirError.self) { try channel.writeInbound(ByteBuffer(bytes: header)) }
        _ = try? channel.finish()
    }
}

@Suite struct BodyStreamTests {
    @Test func bodyStream_deliversInOrder_thenEnds() async throws {
        let s = BodyStream(capacityBytes: 10)
        let producer = Task {
            for i in 0..<100 { await s.send(ByteBuffer(bytes: [UInt8(i), UInt8(i)])) }
            s.finish()
        }
        var got: [UInt8] = []
        while let b = try await s.next() { got += b.readableBytesView }
        await producer.value
        #expect(got == (0..<100).flatMap { [UInt8($0), UInt8($0)] })
    }

    @Test func bodyStream_finishedWithError_throwsAfterTheData() async {
        let s = BodyStream(capacityBytes: 100)
        await s.send(ByteBuffer(bytes: [1]))
        s.finish(error: AgadirError(.ioError, "boom"))
        #expect((try? await s.next()) != nil)
        do {
            _ = try await s.next()
            Issue.record("no error")
        } catch {
            #expect(error.code == .ioError)
        }
    }

    @Test func bodyStream_abandoned_releasesABlockedProducer() async {
        let s = BodyStream(capacityBytes: 1)
        let producer = Task {
            for _ in 0..<1000 { await s.send(ByteBuffer(bytes: [1, 2, 3])) }
            return true
        }
        _ = try? await s.next()
        s.abandon()
        #expect(await producer.value)
    }
}

@Suite struct ErrorFrameDetailTests {
    @Test func redirectAndReplicaCounts_travelInErrorFrames() {
        let redirect = AgadirError.redirect("bucket 'ma' lives in Morocco", to: ["127.0.0.1:7001", "127.0.0.1:7002"])
        let r = Frame.error(id: 3, opcode: Opcode.put.rawValue, redirect, responseStarted: false).error
        #expect(r?.code == .redirect)
        #expect(r?.redirect == ["127.0.0.1:7001", "127.0.0.1:7002"])
        let short = AgadirError.notEnoughReplicas("1 of 2 answered", answered: 1, needed: 2)
        let s = Frame.error(id: 4, opcode: Opcode.get.rawValue, short, responseStarted: true).error
        #expect(s == short)
    }
}
