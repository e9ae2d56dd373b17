import AgadirCore
import Testing

// MARK: - Bucket names

@Test(arguments: [
    "abc", "my-bucket", "my.bucket.2026", "a1b", "0ab", String(repeating: "a", count: 63), "1.2.3", "1.2.3.4.5",
])
func validBucketNames_areAccepted(name: String) throws {
    try Names.validateBucket(name)
}

@Test(arguments: [
    "", "ab", String(repeating: "a", count: 64), "-abc", "abc-", ".abc", "abc.", "ab..cd", "My-Bucket", "my_bucket",
    "my bucket", "bücket", "192.168.1.1", "1.2.3.4",
])
func invalidBucketNames_areRejected_withInvalidBucketName(name: String) {
    let error = expectError(.invalidBucketName) { () throws(AgadirError) in try Names.validateBucket(name) }
    #expect(error?.message.contains("3-63 characters") == true)
}

// MARK: - Object keys

@Test(arguments: [
    "k", "photos/2026/01/cat.jpg", "ⴰⴳⴰⴷⵉⵔ/ⵜⴰⵎⴰⵣⵉⵖⵜ", "日本語 キー", "emoji 🐪", "with space and ~!@#$%^&*()",
    String(repeating: "x", count: Names.maxKeyBytes), String(repeating: "é", count: Names.maxKeyBytes / 2),
])
func validKeys_areAccepted(key: String) throws {
    try Names.validateKey(key)
}

@Test(arguments: [
    "", String(repeating: "x", count: Names.maxKeyBytes + 1),
    String(repeating: "é", count: Names.maxKeyBytes / 2) + "x",
    "tab\there", "new\nline", "nul\u{0}", "del\u{7F}", "\u{1B}[31mred",
])
func invalidKeys_areRejected_withInvalidKey(key: String) {
    expectError(.invalidKey) { () throws(AgadirError) in try Names.validateKey(key) }
}

// MARK: - User metadata

@Test func normalize_sortsByName() throws {
    let entries = [
        MetadataEntry(name: "zeta", value: "1"), MetadataEntry(name: "alpha", value: "2"),
        MetadataEntry(name: "mid", value: "3"),
    ]
    #expect(try MetadataEntry.normalize(entries).map(\.name) == ["alpha", "mid", "zeta"])
    #expect(try MetadataEntry.normalize([]).isEmpty)
}

@Test func normalize_rejectsDuplicateNames() {
    let entries = [
        MetadataEntry(name: "a", value: "1"), MetadataEntry(name: "b", value: ""), MetadataEntry(name: "a", value: "2"),
    ]
    let error = expectError(.invalidArgument) { () throws(AgadirError) in try MetadataEntry.normalize(entries) }
    #expect(error?.message.contains("twice") == true)
}

@Test(arguments: ["", "has space", "a=b", "tab\t", "del\u{7F}"])
func normalize_rejectsEmptyOrControlCharacterNames(name: String) {
    expectError(.invalidArgument) { () throws(AgadirError) in
        try MetadataEntry.normalize([MetadataEntry(name: name, value: "v")])
    }
}

@Test func normalize_enforcesTheEntryAndByteLimits() throws {
    let most = (0..<MetadataEntry.maxEntries).map { MetadataEntry(name: "k\($0)", value: "v") }
    #expect(try MetadataEntry.normalize(most).count == MetadataEntry.maxEntries)
    let tooMany = most + [MetadataEntry(name: "one-more", value: "v")]
    expectError(.metadataTooLarge) { () throws(AgadirError) in try MetadataEntry.normalize(tooMany) }

    let exactly = [MetadataEntry(name: "n", value: String(repeating: "v", count: MetadataEntry.maxTotalBytes - 1))]
    #expect(try MetadataEntry.normalize(exactly).count == 1)
    let tooBig = [MetadataEntry(name: "n", value: String(repeating: "v", count: MetadataEntry.maxTotalBytes))]
    expectError(.metadataTooLarge) { () throws(AgadirError) in try MetadataEntry.normalize(tooBig) }
}
