import AgadirCore
import AgadirTestSupport
import Foundation
import Testing

@testable import AgadirCluster

@Suite("Worker state files")
struct StateFileTests {
    struct Record: Codable, Equatable {
        var cursor: String?
        var passes = 0
    }

    @Test func aMissingFile_givesTheInitialRecord_aSavedOne_readsBack() throws {
        let dir = TempDirectory(prefix: "statefile")
        defer { dir.cleanup() }
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        let file = StateFile<Record>(dataDir: dir.path, name: "w.json", ifMovedAway: "the worker starts over")
        #expect(try file.load(or: Record(cursor: nil, passes: 7)) == Record(cursor: nil, passes: 7))
        try file.save(Record(cursor: "abc", passes: 2))
        #expect(try file.load(or: Record()) == Record(cursor: "abc", passes: 2))
        #expect(!FileManager.default.fileExists(atPath: file.path + ".tmp"))
    }

    @Test func aDamagedFile_isRefused_namingItAndWhatMovingItAwayDoes() throws {
        let dir = TempDirectory(prefix: "statefile")
        defer { dir.cleanup() }
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        let file = StateFile<Record>(dataDir: dir.path, name: "w.json", ifMovedAway: "the worker starts over")
        try Data("{\"passes\": \"many\"".utf8).write(to: URL(fileURLWithPath: file.path))
        let error = expectError(.corruptData) { () throws(AgadirError) in _ = try file.load(or: Record()) }
        #expect(error?.message.contains(file.path) == true && error?.message.contains("the worker starts over") == true)
    }
}
