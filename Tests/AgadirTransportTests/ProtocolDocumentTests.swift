import AgadirCore
import AgadirTransport
import AgadirWire
import NIOCore
import Testing

/// The hex dumps in docs/protocol.md, "A full exchange", are these bytes; if this test
/// fails, the wire format changed and the document (and every client) must follow.
@Suite struct ProtocolDocumentTests {
    static let version = ObjectVersion(
        timestamp: HLCTimestamp(rawValue: 0x0000_019a_b3c4_d5e6 << 16), node: 0x1122_3344_5566_7788)
    static let etag = ChunkID.of(Array("hello".utf8))

    static func hex(_ frame: Frame) -> String { Hex.encode(FrameEncoder.encode(frame)) }

    @Test func documentedPutExchange_isWhatTheEncoderWrites() {
        let put = Request.put(PutRequest(bucket: "photos", key: "a.txt", size: 5, contentType: "text/plain"))
        let request = Frame.request(
            id: 1, opcode: .put, fields: put.fields(), payload: ByteBuffer(bytes: Array("hello".utf8)), end: true)
        #expect(
            Self.hex(request)
                == "4147445201010001000500000000002f0000000000000001000000050000000000040001000670686f746f7300020005612e7478740005000800000000000000050003000a746578742f706c61696e68656c6c6f"
        )
        let result = WriteResult(etag: Self.etag, version: Self.version, size: 5)
        let response = Frame.response(id: 1, opcode: Opcode.put.rawValue, fields: result.fields(), end: true)
        #expect(
            Self.hex(response)
                == "41474452010200010005000000000046000000000000000100000000000000000003000600202cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982400070010019ab3c4d5e600001122334455667788000500080000000000000005"
        )
    }

    @Test func documentedGetExchange_isWhatTheEncoderWrites() {
        let get = Request.get(bucket: "photos", key: "a.txt", range: nil)
        #expect(
            Self.hex(.request(id: 2, opcode: .get, fields: get.fields(), end: true))
                == "414744520101000100060000000000150000000000000002000000000000000000020001000670686f746f7300020005612e747874"
        )
        let info = ObjectInfo(
            bucket: "photos", key: "a.txt", size: 5, etag: Self.etag, version: Self.version, contentType: "text/plain",
            metadata: [])
        let response = Frame.response(
            id: 2, opcode: Opcode.get.rawValue, fields: info.fields(), payload: ByteBuffer(bytes: Array("hello".utf8)),
            end: true)
        #expect(
            Self.hex(response)
                == "414744520102000100060000000000670000000000000002000000050000000000060001000670686f746f7300020005612e747874000500080000000000000005000600202cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982400070010019ab3c4d5e6000011223344556677880003000a746578742f706c61696e68656c6c6f"
        )
        let error = Frame.error(
            id: 3, opcode: 6, AgadirError(.noSuchKey, "object 'photos/b.txt' does not exist"), responseStarted: false)
        #expect(
            Self.hex(error)
                == "41474452010200010006012f0000002a000000000000000300000000000000000001000e00246f626a656374202770686f746f732f622e7478742720646f6573206e6f74206578697374"
        )
    }

    @Test func documentedMembersAnswer_isWhatTheEncoderWrites() throws {
        #expect(
            Self.hex(.request(id: 4, opcode: .members, fields: Request.members.fields(), end: true))
                == "4147445201010001000b00000000000000000000000000040000000000000000")
        let me = MemberInfo(
            nodeID: "benguerir-1", site: "benguerir", labels: ["country": "MA"], clientAddress: "127.0.0.1:7480",
            peerAddress: "127.0.0.1:7946", incarnation: 3, state: "alive", layoutVersion: 1, lastContactMillisAgo: -1)
        let body = try MemberListCodec.encode([me])
        let response = Frame.response(
            id: 4, opcode: Opcode.members.rawValue, payload: ByteBuffer(bytes: body), end: true)
        #expect(
            Self.hex(response)
                == "4147445201020001000b00000000000000000000000000040000006a0000000000000001000b62656e6775657269722d31000962656e67756572697200010007636f756e74727900024d41000e3132372e302e302e313a37343830000e3132372e302e302e313a3739343600000000000000030005616c6976650000000000000001ffffffffffffffff"
        )
        #expect(Opcode.members.rawValue == 11 && Opcode.allCases.count == 13, "docs/protocol.md lists opcodes 1-13")
    }
}
