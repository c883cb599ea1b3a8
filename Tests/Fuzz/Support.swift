// Shared by the fuzz targets (compiled into each, with Sources/TokendWire, by scripts/fuzz).
import Foundation

/// Fails the run (libFuzzer reports the input as a crash) when a property does not hold.
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("property violated: \(message())") }
}
