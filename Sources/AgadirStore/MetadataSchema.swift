import AgadirCore

/// The SQLite schema of `DIR/meta.sqlite`, its version check and its migrations
/// (docs/storage.md, "SQLite schema").
enum MetadataSchema {
    /// The schema this build writes. A database with a newer version is refused on open; an
    /// older one is migrated in place, in the transaction that opens it.
    static let currentVersion: Int64 = 7

    /// The schema of a new database (version 7).
    static let createStatements = """
        CREATE TABLE schema_version(version INTEGER NOT NULL);
        CREATE TABLE chunks(
            id BLOB PRIMARY KEY, segment INTEGER NOT NULL, "offset" INTEGER NOT NULL,
            stored_len INTEGER NOT NULL, raw_len INTEGER NOT NULL, codec INTEGER NOT NULL,
            crc INTEGER NOT NULL, refs INTEGER NOT NULL, created_ms INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE buckets(
            name TEXT PRIMARY KEY, policy TEXT NOT NULL, created_ms INTEGER NOT NULL,
            version_hlc INTEGER NOT NULL DEFAULT 0, version_node INTEGER NOT NULL DEFAULT 0,
            deleted INTEGER NOT NULL DEFAULT 0,
            max_bytes INTEGER NOT NULL DEFAULT 0, max_objects INTEGER NOT NULL DEFAULT 0,
            gen_hlc INTEGER NOT NULL DEFAULT 0, gen_node INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE objects(
            bucket TEXT NOT NULL, key BLOB NOT NULL, version_hlc INTEGER NOT NULL,
            version_node INTEGER NOT NULL, tombstone INTEGER NOT NULL, size INTEGER NOT NULL,
            manifest BLOB NOT NULL, etag BLOB NOT NULL, content_type TEXT NOT NULL,
            inline_size INTEGER NOT NULL, khash INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY(bucket, key)
        ) WITHOUT ROWID;
        CREATE TABLE segments(number INTEGER PRIMARY KEY, committed_len INTEGER NOT NULL);
        \(version2Tables)
        \(version3Index)
        \(version4Tables)
        \(version5Tables)
        \(version6Usage)
        """

    /// Version 6 (quotas, docs/security.md): what each bucket holds on this node, its live
    /// objects and their logical bytes, kept by triggers on `objects` in the transaction of
    /// every write (the writer enables recursive_triggers, so a row an INSERT OR REPLACE
    /// replaces fires the delete trigger).
    private static let version6Usage = """
        CREATE TABLE bucket_usage(
            bucket TEXT PRIMARY KEY, objects INTEGER NOT NULL, bytes INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TRIGGER objects_usage_insert AFTER INSERT ON objects WHEN NEW.tombstone = 0 BEGIN
            INSERT INTO bucket_usage(bucket, objects, bytes) VALUES (NEW.bucket, 1, NEW.size)
            ON CONFLICT(bucket) DO UPDATE SET objects = objects + 1, bytes = bytes + excluded.bytes;
        END;
        CREATE TRIGGER objects_usage_delete AFTER DELETE ON objects WHEN OLD.tombstone = 0 BEGIN
            UPDATE bucket_usage SET objects = objects - 1, bytes = bytes - OLD.size WHERE bucket = OLD.bucket;
        END;
        CREATE TRIGGER objects_usage_update AFTER UPDATE OF bucket, tombstone, size ON objects BEGIN
            UPDATE bucket_usage SET objects = objects - 1, bytes = bytes - OLD.size
            WHERE bucket = OLD.bucket AND OLD.tombstone = 0;
            INSERT INTO bucket_usage(bucket, objects, bytes) SELECT NEW.bucket, 1, NEW.size WHERE NEW.tombstone = 0
            ON CONFLICT(bucket) DO UPDATE SET objects = objects + 1, bytes = bytes + excluded.bytes;
        END;
        """

    /// Version 6 → 7: the buckets' generations (`BucketRecord.generation`); existing records
    /// get (0, 0), which no object predates.
    private static let migrationFrom6 = """
        ALTER TABLE buckets ADD COLUMN gen_hlc INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE buckets ADD COLUMN gen_node INTEGER NOT NULL DEFAULT 0;
        UPDATE schema_version SET version = 7;
        """

    /// Version 5 → 6: the buckets' quotas, and the usage table filled from the objects held.
    private static let migrationFrom5 = """
        ALTER TABLE buckets ADD COLUMN max_bytes INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE buckets ADD COLUMN max_objects INTEGER NOT NULL DEFAULT 0;
        \(version6Usage)
        INSERT INTO bucket_usage(bucket, objects, bytes)
            SELECT bucket, COUNT(*), SUM(size) FROM objects WHERE tombstone = 0 GROUP BY bucket;
        UPDATE schema_version SET version = 6;
        """

    /// Version 5 (docs/security.md): access keys, one JSON record (`AccessKeyRecord`, secret sealed)
    /// per id, last writer wins on the version.
    private static let version5Tables = """
        CREATE TABLE access_keys(
            id TEXT PRIMARY KEY, record BLOB NOT NULL,
            version_hlc INTEGER NOT NULL, version_node INTEGER NOT NULL
        );
        """

    /// Version 4 → 5: the access keys.
    private static let migrationFrom4 = """
        \(version5Tables)
        UPDATE schema_version SET version = 5;
        """

    /// Version 4 (maintenance, docs/storage.md): quarantined chunks (out of service, with their saved
    /// standalone reference count), segments retired by compaction whose file may still be on disk, and
    /// the chunks of a segment as a range (what compaction copies, and live bytes per segment).
    private static let version4Tables = """
        CREATE TABLE quarantine(
            id BLOB PRIMARY KEY, reason TEXT NOT NULL, refs INTEGER NOT NULL, quarantined_ms INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX quarantine_time ON quarantine(quarantined_ms, id);
        CREATE TABLE retired_segments(number INTEGER PRIMARY KEY);
        CREATE INDEX chunks_segment ON chunks(segment, "offset");
        """

    /// Version 3 reads the manifests of a partition as a range of key hashes.
    private static let version3Index = "CREATE INDEX objects_khash ON objects(khash, bucket, key);"

    /// The tables version 2 adds to version 1 (shared by a new database and the migration).
    private static let version2Tables = """
        CREATE TABLE chunk_refs(
            chunk BLOB NOT NULL, bucket TEXT NOT NULL, key BLOB NOT NULL,
            version_hlc INTEGER NOT NULL, version_node INTEGER NOT NULL, created_ms INTEGER NOT NULL,
            PRIMARY KEY(chunk, bucket, key, version_hlc, version_node)
        ) WITHOUT ROWID;
        CREATE TABLE hints(
            id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, bucket TEXT NOT NULL,
            kind INTEGER NOT NULL, chunk BLOB, manifest BLOB, reference BLOB, created_ms INTEGER NOT NULL
        );
        CREATE INDEX hints_target ON hints(target);
        """

    /// Version 1 → 2: the bucket catalog's version and deletion columns (existing rows become
    /// version (0, 0), not deleted), cluster chunk references, and hints.
    private static let migrationFrom1 = """
        ALTER TABLE buckets ADD COLUMN version_hlc INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE buckets ADD COLUMN version_node INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE buckets ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
        \(version2Tables)
        UPDATE schema_version SET version = 2;
        """

    /// Version 2 → 3: the key hash of every object (`KeyHash`), filled in for the existing
    /// rows by `backfillKeyHashes`, and its index.
    private static let migrationFrom2 = """
        ALTER TABLE objects ADD COLUMN khash INTEGER NOT NULL DEFAULT 0;
        \(version3Index)
        UPDATE schema_version SET version = 3;
        """

    /// Version 3 → 4: the maintenance tables and the segment index of `chunks`.
    private static let migrationFrom3 = """
        \(version4Tables)
        UPDATE schema_version SET version = 4;
        """

    /// Computes the key hash of every object row (in the migration's transaction).
    private static func backfillKeyHashes(_ db: SQLiteDatabase) throws(AgadirError) {
        var rows: [(String, [UInt8])] = []
        try db.forEachRow("SELECT bucket, key FROM objects") { row in
            rows.append((row.text(0), row.blob(1)))
            return true
        }
        for (bucket, key) in rows {
            let hash = KeyHash.of(bucket: bucket, key: String(decoding: key, as: UTF8.self))
            try db.run(
                "UPDATE objects SET khash = ? WHERE bucket = ? AND key = ?",
                [.int(Int64(hash)), .text(bucket), .blob(key)])
        }
    }

    /// Sets the connection up for the writer and creates, checks or migrates the schema, all
    /// in one transaction: a migration that fails leaves the database as it was. Returns the
    /// version the database was migrated from, or nil when it was created or already current.
    @discardableResult
    static func prepareWriter(_ db: SQLiteDatabase) throws(AgadirError) -> Int64? {
        let mode = try db.firstRow("PRAGMA journal_mode=WAL") { row in row.text(0) }
        guard mode?.lowercased() == "wal" else {
            throw AgadirError(.ioError, "SQLite \(db.path) refused WAL mode (journal_mode is \(mode ?? "unknown"))")
        }
        // recursive_triggers: an INSERT OR REPLACE fires the delete trigger of the row it
        // replaces, which keeps bucket_usage exact (version 6).
        try db.execute("PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF; PRAGMA recursive_triggers=ON")
        let synchronous = try db.firstRow("PRAGMA synchronous") { row in row.int64(0) }
        guard synchronous == 2 else {
            throw AgadirError(.ioError, "SQLite \(db.path) refused synchronous=FULL (it is \(synchronous ?? -1))")
        }
        try db.execute("BEGIN IMMEDIATE")
        do throws(AgadirError) {
            var migratedFrom: Int64? = nil
            let hasTable =
                try db.firstRow(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
                ) { _ in true } ?? false
            if hasTable {
                let version =
                    try db.firstRow("SELECT MAX(version) FROM schema_version") { row in
                        row.isNull(0) ? nil : row.int64(0)
                    } ?? nil
                guard let version else {
                    throw AgadirError(.corruptData, "\(db.path) has an empty schema_version table")
                }
                guard version <= currentVersion else {
                    throw AgadirError(
                        .ioError,
                        "\(db.path) has schema version \(version), newer than this build supports "
                            + "(\(currentVersion)); run a newer agadird on this data directory")
                }
                guard version >= 1 else {
                    throw AgadirError(
                        .corruptData,
                        "\(db.path) has schema version \(version), which no build of Agadir ever wrote; "
                            + "restore the data directory from a backup")
                }
                if version == 1 {
                    try db.execute(migrationFrom1)
                    migratedFrom = 1
                }
                if version <= 2 {
                    try db.execute(migrationFrom2)
                    try backfillKeyHashes(db)
                    migratedFrom = migratedFrom ?? 2
                }
                if version <= 3 {
                    try db.execute(migrationFrom3)
                    migratedFrom = migratedFrom ?? 3
                }
                if version <= 4 {
                    try db.execute(migrationFrom4)
                    migratedFrom = migratedFrom ?? 4
                }
                if version <= 5 {
                    try db.execute(migrationFrom5)
                    migratedFrom = migratedFrom ?? 5
                }
                if version <= 6 {
                    try db.execute(migrationFrom6)
                    migratedFrom = migratedFrom ?? 6
                }
            } else {
                try db.execute(createStatements)
                try db.run("INSERT INTO schema_version(version) VALUES (?)", [.int(currentVersion)])
            }
            // Listing skips tombstones through this index instead of reading them row by row
            // (a bucket with many deleted keys would otherwise make one page scan them all).
            try db.execute("CREATE INDEX IF NOT EXISTS objects_live ON objects(bucket, key) WHERE tombstone = 0")
            try db.execute("COMMIT")
            return migratedFrom
        } catch {
            try? db.execute("ROLLBACK")
            throw error
        }
    }
}
