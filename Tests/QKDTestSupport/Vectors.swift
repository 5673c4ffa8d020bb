public import Foundation
import QKDCrypto

/// Where the package lives, found from this file's path, so tests can read `Spec/vectors/` and
/// `Fuzz/FailCases/` in place (the vectors are normative: they belong to Spec/, not to a test bundle).
public enum PackagePaths {
    /// The package root (the folder holding Package.swift).
    public static let root: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path),
               FileManager.default.fileExists(atPath: url.appendingPathComponent("Spec").path) {
                return url
            }
        }
        fatalError("package root not found above \(#filePath)")
    }()

    /// `Spec/vectors/<name>`.
    public static func vector(_ name: String) -> URL {
        root.appendingPathComponent("Spec/vectors").appendingPathComponent(name)
    }
}

/// Bytes written as a hex string in a vector file.
public struct HexBytes: Decodable, Sendable, Equatable, CustomStringConvertible {
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let bytes = Hex.decode(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not hex: \(text.prefix(40))"))
        }
        self.bytes = bytes
    }
    public var description: String { Hex.encode(bytes) }
}

/// A known-answer vector file: where the vectors come from, and the cases.
///
/// Every vector file in `Spec/vectors/` has this shape:
/// `{"algorithm": "...", "source": "...", "cases": [{...}, ...]}`; each case's fields are
/// decoded by the test's own `Case` type, with ``HexBytes`` for byte strings.
public struct VectorFile<Case: Decodable>: Decodable {
    public let algorithm: String
    public let source: String
    public let cases: [Case]

    /// Loads `Spec/vectors/<name>`.
    /// - Parameters:
    ///   - name: the file name, e.g. `poly1305-rfc8439.json`.
    ///   - type: the case type.
    /// - Returns: the parsed file.
    public static func load(_ name: String, as type: Case.Type = Case.self) throws -> VectorFile<Case> {
        let data = try Data(contentsOf: PackagePaths.vector(name))
        return try JSONDecoder().decode(VectorFile<Case>.self, from: data)
    }
}
