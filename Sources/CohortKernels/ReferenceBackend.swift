import CohortTensor

/// The plain-Swift backend: every op as straightforward loops on the host,
/// single-threaded. It is the oracle every other backend is tested against
/// (see `Note [Backends]` in docs/design.md), so it favours clarity; loops
/// run over raw pointers in cache-friendly order so a small ResNet-18 step
/// still finishes in seconds in release builds.
///
/// Sums over a batch (batch-norm statistics, gradient reductions, the loss,
/// LARS norms) accumulate in Double; dot products inside one output element
/// (convolution, linear) accumulate in Float, as BLAS does.
/// Every op takes float32 tensors, and bfloat16 activations and weights
/// (see ReferenceBackend+BFloat16.swift).
public final class ReferenceBackend: Backend {
    public let name = "reference"
    public let device = Device.cpu
    public let details = "plain Swift, single-threaded, float32 (bfloat16 arguments computed in float32)"
    public let supportsBFloat16 = true
    let allocator = CachingAllocator(underlying: HostAllocator.shared)

    public init() {}

    // MARK: Memory

    public func makeTensor(_ shape: Shape, dtype: DType) throws -> Tensor {
        try Tensor(shape: shape, dtype: dtype, allocator: allocator)
    }

    public func upload(_ source: Tensor, to destination: Tensor) {
        precondition(source.device.isHost, "upload: source \(source) is not on the host")
        checkSameLayout("upload", source, destination)
        destination.rawPointer.copyMemory(from: source.rawPointer, byteCount: source.byteCount)
    }

    public func download(_ source: Tensor) -> Tensor {
        precondition(source.device.isHost, "download: \(source) is not a host tensor")
        let host = try! Tensor(shape: source.shape, dtype: source.dtype, allocator: HostAllocator.shared)
        host.rawPointer.copyMemory(from: source.rawPointer, byteCount: source.byteCount)
        return host
    }

    public func fill(_ tensor: Tensor, value: Float) {
        switch tensor.dtype {
        case .float32:
            tensor.floats.update(repeating: value)
        case .bfloat16:
            bfloat16Elements(tensor).update(repeating: BFloat16.fromFloat(value))
        default:
            preconditionFailure("fill: \(tensor) is neither float32 nor bfloat16")
        }
    }

    public func copy(_ source: Tensor, to destination: Tensor) {
        precondition(source.shape == destination.shape, "copy: \(source.shape) into \(destination.shape)")
        switch (source.dtype, destination.dtype) {
        case let (from, to) where from == to:
            destination.rawPointer.copyMemory(from: source.rawPointer, byteCount: source.byteCount)
        case (.float32, .bfloat16):
            let from = source.floats, to = bfloat16Elements(destination)
            for index in from.indices { to[index] = BFloat16.fromFloat(from[index]) }
        case (.bfloat16, .float32):
            let from = bfloat16Elements(source), to = destination.floats
            for index in from.indices { to[index] = BFloat16.toFloat(from[index]) }
        default:
            preconditionFailure("copy: cannot convert \(source.dtype) to \(destination.dtype)")
        }
    }

    /// Every call runs to completion before it returns.
    public func synchronize() {}

    // MARK: Elementwise

    public func reluForward(output: Tensor, input: Tensor) {
        let input = float32(input)
        let outputStage = float32Output(output)
        defer { outputStage.commit() }
        let output = outputStage.tensor
        checkSameLayout("reluForward", input, output)
        let x = input.floats, y = output.floats
        for index in x.indices { y[index] = max(0, x[index]) }
    }

    public func reluBackward(dInput: Tensor, dOutput: Tensor, output: Tensor) {
        let dOutput = float32(dOutput), output = float32(output)
        let dInputStage = float32Output(dInput)
        defer { dInputStage.commit() }
        let dInput = dInputStage.tensor
        checkSameLayout("reluBackward", dOutput, output)
        checkSameLayout("reluBackward", dOutput, dInput)
        let dy = dOutput.floats, y = output.floats, dx = dInput.floats
        for index in dy.indices { dx[index] = y[index] > 0 ? dy[index] : 0 }
    }

    public func add(output: Tensor, _ a: Tensor, _ b: Tensor, fuseReLU: Bool) {
        let a = float32(a), b = float32(b)
        let outputStage = float32Output(output)
        defer { outputStage.commit() }
        let output = outputStage.tensor
        checkSameLayout("add", a, b)
        checkSameLayout("add", a, output)
        let x = a.floats, z = b.floats, y = output.floats
        for index in x.indices {
            let sum = x[index] + z[index]
            y[index] = fuseReLU ? max(0, sum) : sum
        }
    }

    // MARK: Pooling and the classifier

    public func globalAveragePoolForward(output: Tensor, input: Tensor) {
        let input = float32(input)
        let outputStage = float32Output(output)
        defer { outputStage.commit() }
        let output = outputStage.tensor
        let (batch, height, width, channels) = nhwc("globalAveragePoolForward", input)
        checkShape("globalAveragePoolForward", output, [batch, channels])
        let x = input.floats, y = output.floats
        let pixels = height * width
        var sums = [Double](repeating: 0, count: channels)
        for n in 0..<batch {
            sums.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            for pixel in 0..<pixels {
                let row = (n * pixels + pixel) * channels
                for c in 0..<channels { sums[c] += Double(x[row + c]) }
            }
            for c in 0..<channels { y[n * channels + c] = Float(sums[c] / Double(pixels)) }
        }
    }

    public func globalAveragePoolBackward(dInput: Tensor, dOutput: Tensor) {
        let dOutput = float32(dOutput)
        let dInputStage = float32Output(dInput)
        defer { dInputStage.commit() }
        let dInput = dInputStage.tensor
        let (batch, height, width, channels) = nhwc("globalAveragePoolBackward", dInput)
        checkShape("globalAveragePoolBackward", dOutput, [batch, channels])
        let dx = dInput.floats, dy = dOutput.floats
        let pixels = height * width
        let scale = 1 / Float(pixels)
        for n in 0..<batch {
            for pixel in 0..<pixels {
                let row = (n * pixels + pixel) * channels
                for c in 0..<channels { dx[row + c] = dy[n * channels + c] * scale }
            }
        }
    }

    public func linearForward(output: Tensor, input: Tensor, weight: Tensor, bias: Tensor) {
        let input = float32(input), weight = float32(weight), bias = float32(bias)
        let outputStage = float32Output(output)
        defer { outputStage.commit() }
        let output = outputStage.tensor
        let (batch, inFeatures, outFeatures) = linearShapes("linearForward", input: input, weight: weight)
        checkShape("linearForward", bias, [outFeatures])
        checkShape("linearForward", output, [batch, outFeatures])
        let x = input.floats, w = weight.floats, b = bias.floats, y = output.floats
        for n in 0..<batch {
            for o in 0..<outFeatures {
                var sum: Float = 0
                for i in 0..<inFeatures { sum += x[n * inFeatures + i] * w[o * inFeatures + i] }
                y[n * outFeatures + o] = sum + b[o]
            }
        }
    }

    public func linearBackward(dInput: Tensor?, dWeight: Tensor, dBias: Tensor,
                               dOutput: Tensor, input: Tensor, weight: Tensor) {
        let dOutput = float32(dOutput), input = float32(input), weight = float32(weight)
        let dWeightStage = float32Output(dWeight)
        defer { dWeightStage.commit() }
        let dWeight = dWeightStage.tensor
        let dBiasStage = float32Output(dBias)
        defer { dBiasStage.commit() }
        let dBias = dBiasStage.tensor
        let dInputStage = dInput.map(float32Output)
        defer { dInputStage?.commit() }
        let dInput = dInputStage?.tensor
        let (batch, inFeatures, outFeatures) = linearShapes("linearBackward", input: input, weight: weight)
        checkShape("linearBackward", dOutput, [batch, outFeatures])
        checkShape("linearBackward", dWeight, [outFeatures, inFeatures])
        checkShape("linearBackward", dBias, [outFeatures])
        let x = input.floats, w = weight.floats, dy = dOutput.floats
        let dw = dWeight.floats, db = dBias.floats
        if let dInput {
            checkShape("linearBackward", dInput, [batch, inFeatures])
            let dx = dInput.floats
            dx.update(repeating: 0)
            for n in 0..<batch {
                for o in 0..<outFeatures {
                    let g = dy[n * outFeatures + o]
                    for i in 0..<inFeatures { dx[n * inFeatures + i] += g * w[o * inFeatures + i] }
                }
            }
        }
        var sums = [Double](repeating: 0, count: inFeatures)
        for o in 0..<outFeatures {
            sums.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            var biasSum = 0.0
            for n in 0..<batch {
                let g = Double(dy[n * outFeatures + o])
                biasSum += g
                for i in 0..<inFeatures { sums[i] += g * Double(x[n * inFeatures + i]) }
            }
            for i in 0..<inFeatures { dw[o * inFeatures + i] = Float(sums[i]) }
            db[o] = Float(biasSum)
        }
    }
}

// MARK: Shape checks

extension ReferenceBackend {
    /// Requires a host float32 tensor of exactly `shape`.
    func checkShape(_ op: String, _ tensor: Tensor, _ shape: Shape) {
        precondition(tensor.device.isHost && tensor.dtype == .float32,
                     "\(op): expected a host float32 tensor, got \(tensor)")
        precondition(tensor.shape == shape, "\(op): expected shape \(shape), got \(tensor.shape)")
    }

    /// Requires `other` to have the shape and dtype of `tensor`, both float32 host tensors.
    func checkSameLayout(_ op: String, _ tensor: Tensor, _ other: Tensor) {
        precondition(tensor.device.isHost && other.device.isHost, "\(op): \(tensor) and \(other) must be host tensors")
        precondition(tensor.shape == other.shape && tensor.dtype == other.dtype,
                     "\(op): \(tensor) and \(other) differ in shape or dtype")
    }

    /// The dimensions of a float32 NHWC host tensor.
    func nhwc(_ op: String, _ tensor: Tensor) -> (batch: Int, height: Int, width: Int, channels: Int) {
        precondition(tensor.shape.rank == 4, "\(op): expected an NHWC tensor, got shape \(tensor.shape)")
        checkShape(op, tensor, tensor.shape)
        return (tensor.shape[0], tensor.shape[1], tensor.shape[2], tensor.shape[3])
    }

    func linearShapes(_ op: String, input: Tensor, weight: Tensor) -> (batch: Int, inFeatures: Int, outFeatures: Int) {
        precondition(input.shape.rank == 2 && weight.shape.rank == 2 && input.shape[1] == weight.shape[1],
                     "\(op): input \(input.shape) does not match weight \(weight.shape) ([out, in])")
        checkShape(op, input, input.shape)
        checkShape(op, weight, weight.shape)
        return (input.shape[0], input.shape[1], weight.shape[0])
    }

    func bfloat16Elements(_ tensor: Tensor) -> UnsafeMutableBufferPointer<UInt16> {
        precondition(tensor.device.isHost && tensor.dtype == .bfloat16, "expected a host bfloat16 tensor, got \(tensor)")
        return UnsafeMutableBufferPointer(start: tensor.rawPointer.assumingMemoryBound(to: UInt16.self),
                                          count: tensor.elementCount)
    }
}
