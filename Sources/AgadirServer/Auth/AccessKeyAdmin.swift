import AgadirCluster
import AgadirCore
import AgadirStore
import AgadirWire

/// Creates, lists, removes and grants access keys (`agadir admin key ...`): records are
/// written like bucket records, to every alive member with a majority of the layout's
/// nodes (this node alone before a layout exists).
struct AccessKeyAdmin: Sendable {
    let access: AccessControl
    let store: NodeStore
    let cluster: ClusterBinding?
    let versions: @Sendable () -> ObjectVersion
    /// The creation time of a live bucket, nil when it does not exist.
    let bucketCreatedMillis: @Sendable (String) async throws(AgadirError) -> UInt64?

    func write(_ record: AccessKeyRecord) async throws(AgadirError) {
        if let cluster {
            try await cluster.coordinator.writeAccessKey(record)
        } else {
            _ = try await store.mergeAccessKey(record)
        }
    }

    func record(_ id: String) async throws(AgadirError) -> AccessKeyRecord {
        guard let r = try await store.accessKeys().first(where: { $0.id == id }), !r.deleted else {
            if access.roots.contains(where: { $0.accessKey == id }) {
                throw AgadirError(
                    .invalidArgument,
                    "\(id) is the root key, derived from the cluster secret: it cannot be changed or removed "
                        + "(rotate the cluster secret to change it)")
            }
            throw AgadirError(.invalidArgument, "no access key \(id) (`agadir admin key ls` lists them)")
        }
        return r
    }

    /// Applies `change` to the stored record of `id` with a new version and writes it.
    func update(_ id: String, _ change: (inout AccessKeyRecord) throws(AgadirError) -> Void) async throws(AgadirError)
        -> AccessKeyRecord
    {
        var r = try await record(id)
        try change(&r)
        r.version = versions()
        try await write(r)
        return r
    }

    func create(_ spec: Admin.KeySpec) async throws(AgadirError) -> Admin.KeyCreated {
        let (record, credentials) = try access.newKey(
            name: spec.name, admin: spec.admin ?? false, createBuckets: spec.createBuckets ?? false,
            version: versions(), nowMillis: WallTime.millis())
        try await write(record)
        return Admin.KeyCreated(
            accessKey: credentials.accessKey, secretKey: credentials.secretKey, key: try await view(record))
    }

    func remove(_ id: String) async throws(AgadirError) -> Admin.KeyView {
        let r = try await update(id) { r throws(AgadirError) in
            r.deleted = true
            r.sealedSecret = []
            r.grants = []
        }
        return try await view(r)
    }

    func grant(_ g: Admin.KeyGrant) async throws(AgadirError) -> Admin.KeyView {
        try Names.validateBucket(g.bucket)
        let grant = g.read || g.write || g.owner
        guard let created = try await bucketCreatedMillis(g.bucket) else {
            if !grant {  // removing a grant on a bucket that is gone is fine
                return try await view(
                    try await update(g.accessKey) { r throws(AgadirError) in
                        r.grants.removeAll { $0.bucket == g.bucket }
                    })
            }
            throw AgadirError(.noSuchBucket, "bucket '\(g.bucket)' does not exist; create it before granting on it")
        }
        let r = try await update(g.accessKey) { r throws(AgadirError) in
            try r.setGrant(
                BucketGrant(
                    bucket: g.bucket, bucketCreatedMillis: created, read: g.read, write: g.write, owner: g.owner))
        }
        return try await view(r)
    }

    /// Gives the key that created `bucket` every right on it.
    func grantCreator(_ principal: Principal, bucket: String) async throws(AgadirError) {
        guard !principal.admin, let created = try await bucketCreatedMillis(bucket) else { return }
        _ = try await update(principal.accessKey) { r throws(AgadirError) in
            try r.setGrant(
                BucketGrant(bucket: bucket, bucketCreatedMillis: created, read: true, write: true, owner: true))
        }
    }

    func list() async throws(AgadirError) -> [Admin.KeyView] {
        let root = access.roots[0]
        var out = [
            Admin.KeyView(
                accessKey: root.accessKey, name: "root", root: true, admin: true, createBuckets: true, deleted: false,
                createdMillis: 0, grants: [])
        ]
        for r in try await store.accessKeys() where !r.deleted { out.append(try await view(r)) }
        return out
    }

    func view(_ r: AccessKeyRecord) async throws(AgadirError) -> Admin.KeyView {
        var grants: [Admin.GrantView] = []
        for g in r.grants {
            let current = try await bucketCreatedMillis(g.bucket) == g.bucketCreatedMillis
            grants.append(
                Admin.GrantView(bucket: g.bucket, read: g.read, write: g.write, owner: g.owner, current: current))
        }
        return Admin.KeyView(
            accessKey: r.id, name: r.name, root: false, admin: r.admin, createBuckets: r.createBuckets,
            deleted: r.deleted, createdMillis: r.createdMillis, grants: grants)
    }
}
