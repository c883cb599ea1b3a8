/// The version this build reports (`AdminService/Status`, `tokend --version`).
public enum TokendVersion {
    public static let current = "0.1.0"
}
