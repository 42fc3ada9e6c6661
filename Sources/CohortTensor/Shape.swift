/// The extent of a tensor along each axis, outermost first.
///
/// Layout convention (see `Note [Layout]` in docs/design.md): activations are
/// NHWC, `[batch, height, width, channels]`; convolution weights keep
/// PyTorch's OIHW, `[out, in, kernelH, kernelW]`, so checkpoints move to and
/// from PyTorch unchanged; linear weights are `[out, in]`.
public struct Shape: Hashable, Sendable, Codable, CustomStringConvertible, ExpressibleByArrayLiteral {
    public var dimensions: [Int]

    public init(_ dimensions: [Int]) {
        precondition(dimensions.allSatisfy { $0 >= 0 }, "negative dimension in \(dimensions)")
        self.dimensions = dimensions
    }

    public init(arrayLiteral elements: Int...) { self.init(elements) }

    public var rank: Int { dimensions.count }
    public var elementCount: Int { dimensions.reduce(1, *) }
    public subscript(axis: Int) -> Int { dimensions[axis] }

    public var description: String { "[" + dimensions.map(String.init).joined(separator: ", ") + "]" }
}
