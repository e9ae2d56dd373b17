import AgadirCore

/// `HOST:PORT` and `[IPv6]:PORT` endpoints, as every Agadir command and config file
/// writes them.
public enum Endpoint {
    /// Splits an endpoint; `allowPortZero` for listen addresses (the kernel picks a port).
    public static func parse(_ s: String, allowPortZero: Bool = false) throws(AgadirError) -> (host: String, port: Int)
    {
        let example = "HOST:PORT, e.g. 127.0.0.1:7480 or [::1]:7480"
        var host: Substring
        var portPart: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else {
                throw AgadirError(.invalidArgument, "endpoint '\(s)' opens '[' without closing it; write \(example)")
            }
            host = s[s.index(after: s.startIndex)..<close]
            let rest = s[s.index(after: close)...]
            guard rest.hasPrefix(":") else { throw AgadirError(.invalidArgument, "endpoint '\(s)' must be \(example)") }
            portPart = rest.dropFirst()
        } else {
            guard let colon = s.lastIndex(of: ":") else {
                throw AgadirError(.invalidArgument, "endpoint '\(s)' must be \(example)")
            }
            host = s[..<colon]
            portPart = s[s.index(after: colon)...]
        }
        let lowest = allowPortZero ? 0 : 1
        guard !host.isEmpty, let port = Int(portPart), (lowest...65535).contains(port) else {
            throw AgadirError(.invalidArgument, "endpoint '\(s)' must be \(example), with a port in \(lowest)...65535")
        }
        return (String(host), port)
    }
}
