import CohortExperiments
import Foundation
import XCTest

/// results.json against docs/results-schema.json: with Python's jsonschema
/// when it is installed, and always with the small validator below, which
/// knows exactly the keywords the schema uses (and fails on any other, so
/// the schema cannot outgrow the check silently).
final class SchemaTests: XCTestCase {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let schemaURL = packageRoot.appendingPathComponent("docs/results-schema.json")

    func sampleJSON() throws -> Data { try ResultsFile.encode(SampleResults.make()) }

    func testSampleResultsMatchTheSchema() throws {
        let schema = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.schemaURL))
        let instance = try JSONSerialization.jsonObject(with: sampleJSON())
        let errors = StructuralValidator(root: schema).validate(instance)
        XCTAssertEqual(errors, [], errors.joined(separator: "\n"))
    }

    func testTheValidatorCatchesWhatTheSchemaForbids() throws {
        let schema = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.schemaURL))
        var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: sampleJSON()) as? [String: Any])
        var q2 = try XCTUnwrap(object["q2"] as? [String: Any])
        var records = try XCTUnwrap(q2["records"] as? [[String: Any]])
        records[0]["strategy"] = "fsdp"
        records[1]["epochSeconds"] = -1
        records[2]["surprise"] = true
        records[3].removeValue(forKey: "gpus")
        q2["records"] = records
        object["q2"] = q2
        object.removeValue(forKey: "metadata")
        let errors = StructuralValidator(root: schema).validate(object)
        for expected in ["q2.records[0].strategy", "q2.records[1].epochSeconds", "q2.records[2].surprise",
                         "q2.records[3]: missing gpus", ": missing metadata"] {
            XCTAssertTrue(errors.contains { $0.contains(expected) }, "expected an error at \(expected) in \(errors)")
        }
    }

    /// The reference validator, when python3 has jsonschema (`pip install jsonschema`).
    func testSampleResultsPassPythonJSONSchema() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-schema-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let instance = directory.appendingPathComponent("results.json")
        try sampleJSON().write(to: instance)
        let script = """
            import json, sys
            try:
                import jsonschema
            except ImportError:
                sys.exit(77)
            schema = json.load(open(sys.argv[1]))
            jsonschema.Draft202012Validator.check_schema(schema)
            errors = list(jsonschema.Draft202012Validator(schema).iter_errors(json.load(open(sys.argv[2]))))
            for error in errors:
                print("/".join(map(str, error.absolute_path)), error.message)
            sys.exit(1 if errors else 0)
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, Self.schemaURL.path, instance.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { throw XCTSkip("python3 is not available") }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus == 77 || output.contains("No such file or directory") {
            throw XCTSkip("python3 has no jsonschema (pip install jsonschema)")
        }
        XCTAssertEqual(process.terminationStatus, 0, output)
    }
}

/// Validates JSON (as JSONSerialization returns it) against the subset of
/// JSON Schema 2020-12 that docs/results-schema.json uses.
struct StructuralValidator {
    let root: Any
    static let annotations: Set<String> = ["$schema", "$id", "title", "description"]
    static let keywords: Set<String> = ["type", "required", "properties", "additionalProperties", "items", "$ref", "$defs",
                                        "enum", "const", "minimum", "maximum", "exclusiveMaximum", "minLength"]

    func validate(_ instance: Any) -> [String] { check(instance, root, at: "") }

    func check(_ value: Any, _ schemaValue: Any, at path: String) -> [String] {
        guard let schema = schemaValue as? [String: Any] else { return ["\(path): schema is not an object"] }
        var errors: [String] = []
        for key in schema.keys where !Self.keywords.contains(key) && !Self.annotations.contains(key) {
            errors.append("\(path): schema keyword \(key) is not supported by this validator")
        }
        if let reference = schema["$ref"] as? String {
            let name = reference.replacingOccurrences(of: "#/$defs/", with: "")
            guard let definitions = (root as? [String: Any])?["$defs"] as? [String: Any], let target = definitions[name] else {
                return errors + ["\(path): unresolved $ref \(reference)"]
            }
            errors += check(value, target, at: path)
        }
        if let type = schema["type"] as? String, !Self.matches(value, type: type) {
            return errors + ["\(path): expected \(type), found \(value)"]
        }
        if let options = schema["enum"] as? [Any], !options.contains(where: { Self.equal($0, value) }) {
            errors.append("\(path): \(value) is not one of \(options)")
        }
        if let constant = schema["const"], !Self.equal(constant, value) {
            errors.append("\(path): expected \(constant)")
        }
        if let number = Self.number(value) {
            if let minimum = schema["minimum"].flatMap(Self.number), number < minimum { errors.append("\(path): \(number) < \(minimum)") }
            if let maximum = schema["maximum"].flatMap(Self.number), number > maximum { errors.append("\(path): \(number) > \(maximum)") }
            if let limit = schema["exclusiveMaximum"].flatMap(Self.number), number >= limit { errors.append("\(path): \(number) >= \(limit)") }
        }
        if let text = value as? String, let minLength = schema["minLength"] as? Int, text.count < minLength {
            errors.append("\(path): shorter than \(minLength)")
        }
        if let object = value as? [String: Any] {
            let properties = schema["properties"] as? [String: Any] ?? [:]
            for key in schema["required"] as? [String] ?? [] where object[key] == nil {
                errors.append("\(path): missing \(key)")
            }
            for (key, child) in object {
                let childPath = path.isEmpty ? key : "\(path).\(key)"
                if let propertySchema = properties[key] {
                    errors += check(child, propertySchema, at: childPath)
                } else if (schema["additionalProperties"] as? Bool) == false {
                    errors.append("\(childPath): not allowed here")
                }
            }
        }
        if let array = value as? [Any], let items = schema["items"] {
            for (index, element) in array.enumerated() { errors += check(element, items, at: "\(path)[\(index)]") }
        }
        return errors
    }

    /// JSONSerialization returns true/false as Bool or as an NSNumber of ObjC type "c".
    static func isBool(_ value: Any) -> Bool {
        if type(of: value) == Bool.self { return true }
        guard let number = value as? NSNumber else { return false }
        return String(cString: number.objCType) == "c"
    }

    static func number(_ value: Any) -> Double? {
        guard !isBool(value), let number = value as? NSNumber else { return nil }
        return number.doubleValue
    }

    static func matches(_ value: Any, type: String) -> Bool {
        switch type {
        case "object": return value is [String: Any]
        case "array": return value is [Any]
        case "string": return value is String
        case "boolean": return isBool(value)
        case "number": return number(value) != nil
        case "integer": return number(value).map { $0 == $0.rounded() } ?? false
        default: return false
        }
    }

    static func equal(_ a: Any, _ b: Any) -> Bool {
        if let a = a as? String, let b = b as? String { return a == b }
        if let a = number(a), let b = number(b) { return a == b }
        return false
    }
}
