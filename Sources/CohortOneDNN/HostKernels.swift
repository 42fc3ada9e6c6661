import CohortKernels
import CohortTensor
#if canImport(Glibc)
import Glibc
#endif

/// The ops too small or too irregular for a oneDNN primitive to pay off:
/// global average pooling (ResNet-18's last activation is 32x4x4x512 at
/// batch 32), the loss over `[N, 10]` logits and the optimiser step. Plain
/// loops over contiguous rows that the compiler vectorises.
extension OneDNNBackend {
    // MARK: Pooling

    public func globalAveragePoolForward(output: Tensor, input: Tensor) {
        precondition(input.shape.rank == 4, "global average pool of \(input): want NHWC")
        let (batch, pixels, channels) = (input.shape[0], input.shape[1] * input.shape[2], input.shape[3])
        expect((output, [batch, channels]), (input, input.shape))
        let x = input.floats.baseAddress!, y = output.floats.baseAddress!
        let scale = 1 / Float(pixels)
        for n in 0..<batch {
            let row = y + n * channels
            row.update(repeating: 0, count: channels)
            for p in 0..<pixels {
                let pixel = x + (n * pixels + p) * channels
                for c in 0..<channels { row[c] += pixel[c] }
            }
            for c in 0..<channels { row[c] *= scale }
        }
    }

    public func globalAveragePoolBackward(dInput: Tensor, dOutput: Tensor) {
        precondition(dInput.shape.rank == 4, "global average pool backward into \(dInput): want NHWC")
        let (batch, pixels, channels) = (dInput.shape[0], dInput.shape[1] * dInput.shape[2], dInput.shape[3])
        expect((dOutput, [batch, channels]), (dInput, dInput.shape))
        let dy = dOutput.floats.baseAddress!, dx = dInput.floats.baseAddress!
        let scale = 1 / Float(pixels)
        for n in 0..<batch {
            for p in 0..<pixels {
                let pixel = dx + (n * pixels + p) * channels
                for c in 0..<channels { pixel[c] = dy[n * channels + c] * scale }
            }
        }
    }

    // MARK: Loss

    public func softmaxCrossEntropyForward(loss: Tensor, probabilities: Tensor, correct: Tensor,
                                           logits: Tensor, labels: Tensor, labelSmoothing: Float) {
        precondition(logits.shape.rank == 2, "logits \(logits.shape): want [N, K]")
        let (rows, classes) = (logits.shape[0], logits.shape[1])
        expect((loss, [1]), (correct, [1]), (probabilities, logits.shape), (logits, logits.shape))
        precondition(labels.dtype == .int32 && labels.shape == [rows], "labels \(labels): want int32 [\(rows)]")
        let z = logits.floats.baseAddress!, p = probabilities.floats.baseAddress!, label = labels.int32s
        let offTarget = labelSmoothing / Float(classes), onTarget = 1 - labelSmoothing + offTarget
        var total: Double = 0
        var hits = 0
        for n in 0..<rows {
            let row = z + n * classes, out = p + n * classes
            let target = Int(label[n])
            precondition(target >= 0 && target < classes, "label \(target) of row \(n) outside 0..<\(classes)")
            var maximum = row[0], best = 0
            for k in 1..<max(classes, 1) where row[k] > maximum { maximum = row[k]; best = k }
            var sum: Float = 0
            for k in 0..<classes { out[k] = expf(row[k] - maximum); sum += out[k] }
            let logSum = logf(sum)
            // -sum_k target_k * log p_k with log p_k = z_k - max - log(sum).
            var rowLoss: Float = 0
            for k in 0..<classes { rowLoss -= offTarget * (row[k] - maximum - logSum) }
            rowLoss -= (onTarget - offTarget) * (row[target] - maximum - logSum)
            total += Double(rowLoss)
            let inverse = 1 / sum
            for k in 0..<classes { out[k] *= inverse }
            if best == target { hits += 1 }
        }
        loss.floats[0] = Float(total / Double(rows))
        correct.floats[0] = Float(hits)
    }

    public func softmaxCrossEntropyBackward(dLogits: Tensor, probabilities: Tensor, labels: Tensor, labelSmoothing: Float) {
        precondition(probabilities.shape.rank == 2, "probabilities \(probabilities.shape): want [N, K]")
        let (rows, classes) = (probabilities.shape[0], probabilities.shape[1])
        expect((dLogits, probabilities.shape), (probabilities, probabilities.shape))
        precondition(labels.dtype == .int32 && labels.shape == [rows], "labels \(labels): want int32 [\(rows)]")
        let p = probabilities.floats.baseAddress!, dz = dLogits.floats.baseAddress!, label = labels.int32s
        let offTarget = labelSmoothing / Float(classes), onTarget = 1 - labelSmoothing + offTarget
        let scale = 1 / Float(rows)
        for n in 0..<rows {
            let row = p + n * classes, out = dz + n * classes
            for k in 0..<classes { out[k] = (row[k] - offTarget) * scale }
            let target = Int(label[n])
            out[target] = (row[target] - onTarget) * scale
        }
    }

    // MARK: Optimiser

    public func optimizerStep(parameters: Tensor, gradients: Tensor, momentumBuffer: Tensor,
                              segments: [ParameterSegment], configuration: OptimizerStepConfiguration) {
        let count = parameters.elementCount
        expect((parameters, [count]), (gradients, [count]), (momentumBuffer, [count]))
        let c = configuration
        let scale = c.gradientScale  // each gradient is read as scale * g (Backend.optimizerStep)
        for segment in segments {
            precondition(segment.offset >= 0 && segment.count >= 0 && segment.offset + segment.count <= count,
                         "segment \(segment) outside a buffer of \(count)")
            let w = parameters.floats.baseAddress! + segment.offset
            let g = gradients.floats.baseAddress! + segment.offset
            let buffer = momentumBuffer.floats.baseAddress! + segment.offset
            let decay = segment.weightDecay ? c.weightDecay : 0
            var trust: Float = 1
            if let eta = c.larsTrustCoefficient, segment.layerAdaptation {
                let weightNorm = norm(w, segment.count), gradientNorm = abs(scale) * norm(g, segment.count)
                if weightNorm > 0 && gradientNorm > 0 {
                    trust = eta * weightNorm / (gradientNorm + decay * weightNorm + c.larsEpsilon)
                }
            }
            let (momentum, keep) = (c.momentum, 1 - c.dampening)
            let useMomentum = momentum != 0, firstStep = c.isFirstStep, nesterov = c.nesterov
            for i in 0..<segment.count {
                var d = (scale * g[i] + decay * w[i]) * trust
                if useMomentum {
                    let b = firstStep ? d : momentum * buffer[i] + keep * d
                    buffer[i] = b
                    d = nesterov ? d + momentum * b : b
                }
                w[i] -= c.learningRate * d
            }
        }
    }
}

/// The Euclidean norm of `count` floats, accumulated in double so a
/// multi-million-element tensor loses no precision.
private func norm(_ x: UnsafeMutablePointer<Float>, _ count: Int) -> Float {
    var sum: Double = 0
    for i in 0..<count { sum += Double(x[i]) * Double(x[i]) }
    return Float(sum.squareRoot())
}
