import HTTPTypes

extension HTTPFields {
    /// `self[name]`: the field's value, or the values of all fields of that name joined with
    /// ", " ("; " for `Cookie`), or `nil`. The subscript builds a lazy sequence and joins it even
    /// for one field, through unspecialised generic code that looks up type metadata on every
    /// call; this scans once and falls back to the subscript only for a repeated field. On the
    /// introspection fast path, where every request reads four or five fields.
    func value(_ name: HTTPField.Name) -> String? {
        var found: String?
        for field in self where field.name == name {
            if found != nil { return self[name] }
            found = field.value
        }
        return found
    }
}
