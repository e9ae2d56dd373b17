import AgadirCore
import AgadirWire

/// What each request needs of its caller (docs/protocol.md, "Access keys"), as pure logic.
public enum Authorization {
    public enum Need: Sendable, Hashable {
        /// PING: anyone, signed or not.
        case anyone
        /// MEMBERS, LIST_BUCKETS (which shows only the buckets granted): any valid key.
        case anyKey
        case admin
        case createBuckets
        /// ROUTE: any right on the bucket.
        case anyRight(String)
        case read(String)
        case write(String)
        case owner(String)
    }

    public static func need(_ request: Request) -> Need {
        switch request {
        case .ping: .anyone
        case .members, .listBuckets: .anyKey
        case .stat, .admin: .admin
        case .createBucket: .createBuckets
        case .deleteBucket(let name): .owner(name)
        case .route(let bucket): .anyRight(bucket)
        case .put(let p): .write(p.bucket)
        case .delete(let bucket, _): .write(bucket)
        case .get(let bucket, _, _), .head(let bucket, _): .read(bucket)
        case .list(let l): .read(l.bucket)
        }
    }

    /// The bucket whose grant decides, if any.
    public static func bucket(of need: Need) -> String? {
        switch need {
        case .anyRight(let b), .read(let b), .write(let b), .owner(let b): b
        case .anyone, .anyKey, .admin, .createBuckets: nil
        }
    }

    /// Nil when `principal` may do what `need` says; else the refusal. `bucketCreatedMillis`
    /// is the creation time of the bucket `need` names (nil when it does not exist): a grant
    /// given on an earlier bucket of the same name gives nothing.
    public static func refusal(_ need: Need, principal: Principal?, bucketCreatedMillis: UInt64?) -> AgadirError? {
        if case .anyone = need { return nil }
        guard let principal else {
            return AgadirError(.notAuthenticated, "anonymous requests may only PING; sign the request with a key")
        }
        if principal.admin { return nil }
        func denied(_ what: String) -> AgadirError {
            AgadirError(
                .accessDenied,
                "key \(principal.accessKey) (\(principal.name)) may not \(what); an admin can grant it "
                    + "(`agadir admin key grant`)")
        }
        switch need {
        case .anyone, .anyKey:
            return nil
        case .admin:
            return denied("run admin commands or read node statistics (it is not an admin key)")
        case .createBuckets:
            return principal.createBuckets ? nil : denied("create buckets")
        case .anyRight(let b), .read(let b), .write(let b), .owner(let b):
            guard let grant = principal.grants[b] else { return denied(verb(need) + " bucket '\(b)'") }
            // A bucket that does not exist: the request goes on to NO_SUCH_BUCKET.
            if let created = bucketCreatedMillis, created != grant.bucketCreatedMillis {
                return denied(verb(need) + " bucket '\(b)' (its grant was given on an earlier bucket of that name)")
            }
            let allowed: Bool
            switch need {
            case .read: allowed = grant.read || grant.owner
            case .write: allowed = grant.write || grant.owner
            case .owner: allowed = grant.owner
            default: allowed = !grant.isEmpty
            }
            return allowed ? nil : denied(verb(need) + " bucket '\(b)'")
        }
    }

    static func verb(_ need: Need) -> String {
        switch need {
        case .read: "read"
        case .write: "write to"
        case .owner: "delete"
        default: "use"
        }
    }

    /// True when `principal` sees `bucket` in LIST_BUCKETS.
    public static func lists(_ bucket: BucketInfo, principal: Principal?) -> Bool {
        guard let principal else { return false }
        if principal.admin { return true }
        guard let grant = principal.grants[bucket.name] else { return false }
        return grant.bucketCreatedMillis == bucket.createdMillis && !grant.isEmpty
    }
}
