import SwvmBase

extension JSON {
    /// This object with `key` set to `value` (added at the end when absent);
    /// a non-object becomes an object holding only `key`.
    func setting(_ key: String, _ value: JSON) -> JSON {
        var members = object ?? []
        if let i = members.lastIndex(where: { $0.0 == key }) {
            members[i].1 = value
        } else {
            members.append((key, value))
        }
        return .object(members)
    }

    /// The array at `key` with `items` appended.
    func appending(_ key: String, _ items: [JSON]) -> JSON {
        setting(key, .array((self[key]?.array ?? []) + items))
    }
}
