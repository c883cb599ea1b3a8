extension Dictionary {
    /// What a bounded cache evicts to make room: a 256th of its keys (at least one, and none when
    /// empty), consecutive in table order from a random place.
    ///
    /// Not the table's first keys: a cache that always evicts those empties the front of its hash
    /// table and packs the rest, and the linear probing of lookups and inserts in the packed part
    /// then grows long (a full `TokenCache` of 400,000 records took 1 ms of CPU per insert). The
    /// walk to the random place costs O(count); over the batch it is O(1) per eviction.
    public func evictionBatch() -> [Key] {
        guard !isEmpty else { return [] }
        let size = Swift.max(1, count / 256)
        let start = keys.index(keys.startIndex, offsetBy: Int.random(in: 0...(count - size)))
        return Array(keys[start...].prefix(size))
    }
}
