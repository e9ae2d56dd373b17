import AgadirCore
import AgadirServer
import AgadirWire
import Testing

@Suite("Authorization: what each request needs of its key")
struct AuthorizationTests {
    func principal(admin: Bool = false, create: Bool = false, _ grants: [BucketGrant] = []) -> Principal {
        Principal(
            accessKey: "AKAAAAAAAAAAAAAAAAAA", name: "k", isRoot: false, admin: admin, createBuckets: create,
            grants: Dictionary(uniqueKeysWithValues: grants.map { ($0.bucket, $0) }))
    }

    func grant(_ b: String, created: UInt64 = 7, r: Bool = false, w: Bool = false, o: Bool = false) -> BucketGrant {
        BucketGrant(bucket: b, bucketCreatedMillis: created, read: r, write: w, owner: o)
    }

    func refused(_ request: Request, _ p: Principal?, created: UInt64? = 7) -> AgadirError.Code? {
        Authorization.refusal(Authorization.need(request), principal: p, bucketCreatedMillis: created)?.code
    }

    let get = Request.get(bucket: "b", key: "k", range: nil)
    let put = Request.put(PutRequest(bucket: "b", key: "k", size: 1))

    @Test func anonymousCallersMayOnlyPing() {
        #expect(refused(.ping, nil) == nil)
        for r in [Request.listBuckets, .members, .stat, .admin(command: "layout.show"), get, put] {
            #expect(refused(r, nil) == .notAuthenticated, "\(r)")
        }
    }

    @Test func adminKeysMayDoEverything() {
        let p = principal(admin: true)
        for r in [
            Request.listBuckets, .stat, .admin(command: "key.create"), get, put, .deleteBucket(name: "b"),
            .createBucket(name: "c", policy: nil),
        ] {
            #expect(refused(r, p) == nil, "\(r)")
        }
    }

    @Test func grantsGiveExactlyTheirRights() {
        let reader = principal([grant("b", r: true)])
        #expect(refused(get, reader) == nil)
        #expect(refused(.head(bucket: "b", key: "k"), reader) == nil)
        #expect(refused(.list(ListRequest(bucket: "b")), reader) == nil)
        #expect(refused(put, reader) == .accessDenied)
        #expect(refused(.delete(bucket: "b", key: "k"), reader) == .accessDenied)
        #expect(refused(.deleteBucket(name: "b"), reader) == .accessDenied)
        let writer = principal([grant("b", w: true)])
        #expect(refused(put, writer) == nil && refused(get, writer) == .accessDenied)
        let owner = principal([grant("b", o: true)])
        #expect(refused(put, owner) == nil && refused(get, owner) == nil)
        #expect(refused(.deleteBucket(name: "b"), owner) == nil)
        // Another bucket: nothing.
        let other = Request.get(bucket: "c", key: "k", range: nil)
        #expect(refused(other, owner) == .accessDenied)
        #expect(refused(.route(bucket: "c"), owner) == .accessDenied && refused(.route(bucket: "b"), reader) == nil)
        // Admin requests and bucket creation need their own rights.
        #expect(refused(.admin(command: "layout.show"), owner) == .accessDenied)
        #expect(refused(.stat, owner) == .accessDenied)
        #expect(refused(.createBucket(name: "n", policy: nil), owner) == .accessDenied)
        #expect(refused(.createBucket(name: "n", policy: nil), principal(create: true)) == nil)
        #expect(refused(.listBuckets, reader) == nil && refused(.members, reader) == nil)
    }

    @Test func aGrantDoesNotCoverABucketCreatedAgainUnderItsName() {
        let p = principal([grant("b", created: 7, o: true)])
        #expect(refused(get, p, created: 7) == nil)
        #expect(refused(get, p, created: 8) == .accessDenied)
        // Gone: the request goes on and meets NO_SUCH_BUCKET.
        #expect(refused(get, p, created: nil) == nil)
        #expect(Authorization.lists(BucketInfo(name: "b", policy: "p", createdMillis: 7), principal: p))
        #expect(!Authorization.lists(BucketInfo(name: "b", policy: "p", createdMillis: 8), principal: p))
        #expect(!Authorization.lists(BucketInfo(name: "c", policy: "p", createdMillis: 7), principal: p))
        #expect(!Authorization.lists(BucketInfo(name: "b", policy: "p", createdMillis: 7), principal: nil))
    }
}
