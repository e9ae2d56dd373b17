import AgadirCore
import AgadirWire
import Foundation

extension Credentials {
    /// The credentials of the environment, in this order: `AGADIR_ACCESS_KEY` with
    /// `AGADIR_SECRET_KEY`; the file `AGADIR_CREDENTIALS` names; `~/.agadir/credentials`.
    /// Nil when none is set (requests then go unsigned and only PING is answered).
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(AgadirError) -> Credentials? {
        if let key = environment["AGADIR_ACCESS_KEY"], !key.isEmpty {
            guard let secret = environment["AGADIR_SECRET_KEY"], !secret.isEmpty else {
                throw AgadirError(.invalidArgument, "AGADIR_ACCESS_KEY is set but AGADIR_SECRET_KEY is not")
            }
            return Credentials(accessKey: key, secretKey: secret)
        }
        if let path = environment["AGADIR_CREDENTIALS"], !path.isEmpty { return try read(path) }
        if let home = environment["HOME"] {
            let path = (home as NSString).appendingPathComponent(".agadir/credentials")
            if FileManager.default.fileExists(atPath: path) { return try read(path) }
        }
        return nil
    }

    /// Reads a credentials file (`Credentials.parse`).
    public static func read(_ path: String) throws(AgadirError) -> Credentials {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AgadirError(.invalidArgument, "cannot read the credentials file \(path)")
        }
        return try parse(String(decoding: data, as: UTF8.self), source: path)
    }
}
