import CohortTensor

/// Batch normalisation of an NHWC tensor `[N,H,W,C]` over its N*H*W rows,
/// one statistic per channel, with PyTorch's running-statistics update
/// (`torch.nn.BatchNorm2d`). The channel axis is innermost, so every loop
/// walks rows and, within a row, channels.
extension ReferenceBackend {
    /// y = scale * (x - mean) * invStd + shift, with the batch's mean and
    /// biased variance; runningVar takes the unbiased variance.
    public func batchNormForwardTraining(output: Tensor, input: Tensor, scale: Tensor, shift: Tensor,
                                         runningMean: Tensor, runningVar: Tensor,
                                         savedMean: Tensor, savedInvStd: Tensor,
                                         momentum: Float, epsilon: Float, fuseReLU: Bool) {
        let input = float32(input)
        let outputStage = float32Output(output)
        defer { outputStage.commit() }
        let output = outputStage.tensor
        let op = "batchNormForwardTraining"
        let (rows, channels) = checkBatchNorm(op, input: input, output: output, scale: scale, shift: shift)
        for statistic in [runningMean, runningVar, savedMean, savedInvStd] { checkShape(op, statistic, [channels]) }
        precondition(rows > 1, "\(op): \(input.shape) has one value per channel; training needs more")
        let x = input.floats
        var mean = [Double](repeating: 0, count: channels)
        for row in 0..<rows {
            for c in 0..<channels { mean[c] += Double(x[row * channels + c]) }
        }
        mean = mean.map { $0 / Double(rows) }
        var variance = [Double](repeating: 0, count: channels)
        for row in 0..<rows {
            for c in 0..<channels {
                let centred = Double(x[row * channels + c]) - mean[c]
                variance[c] += centred * centred
            }
        }
        let n = Double(rows)
        let saved = savedMean.floats, invStd = savedInvStd.floats
        let running = runningMean.floats, runningVariance = runningVar.floats
        for c in 0..<channels {
            variance[c] /= n
            saved[c] = Float(mean[c])
            invStd[c] = Float(1 / (variance[c] + Double(epsilon)).squareRoot())
            running[c] = (1 - momentum) * running[c] + momentum * Float(mean[c])
            runningVariance[c] = (1 - momentum) * runningVariance[c] + momentum * Float(variance[c] * n / (n - 1))
        }
        normalize(output: output, input: input, scale: scale, shift: shift,
                  mean: Array(saved), invStd: Array(invStd), fuseReLU: fuseReLU)
    }

    public func batchNormForwardInference(output: Tensor, input: Tensor, scale: Tensor, shift: Tensor,
                                          runningMean: Tensor, runningVar: Tensor, epsilon: Float, fuseReLU: Bool) {
        let input = float32(input)
        let outputStage = float32Output(output)
        defer { outputStage.commit() }
        let output = outputStage.tensor
        let op = "batchNormForwardInference"
        let (_, channels) = checkBatchNorm(op, input: input, output: output, scale: scale, shift: shift)
        checkShape(op, runningMean, [channels])
        checkShape(op, runningVar, [channels])
        let variance = runningVar.floats
        let invStd = (0..<channels).map { 1 / (variance[$0] + epsilon).squareRoot() }
        normalize(output: output, input: input, scale: scale, shift: shift,
                  mean: Array(runningMean.floats), invStd: invStd, fuseReLU: fuseReLU)
    }

    /// With xHat = (x - mean) * invStd and dy masked by the ReLU when fused:
    ///     dShift = sum dy,  dScale = sum dy * xHat   (over rows)
    ///     dx = scale * invStd * (dy - dShift / n - xHat * dScale / n)
    public func batchNormBackward(dInput: Tensor, dScale: Tensor, dShift: Tensor, dOutput: Tensor,
                                  input: Tensor, output: Tensor, scale: Tensor,
                                  savedMean: Tensor, savedInvStd: Tensor, fuseReLU: Bool) {
        let dOutput = float32(dOutput), input = float32(input), output = float32(output)
        let dInputStage = float32Output(dInput)
        defer { dInputStage.commit() }
        let dInput = dInputStage.tensor
        let op = "batchNormBackward"
        let (rows, channels) = checkBatchNorm(op, input: input, output: dOutput, scale: scale, shift: dShift)
        checkShape(op, dInput, input.shape)
        checkShape(op, dScale, [channels])
        for statistic in [savedMean, savedInvStd] { checkShape(op, statistic, [channels]) }
        if fuseReLU { checkShape(op, output, input.shape) }
        let x = input.floats, dy = dOutput.floats, dx = dInput.floats
        let y = fuseReLU ? output.floats : nil
        let mean = savedMean.floats, invStd = savedInvStd.floats, gamma = scale.floats
        /// dy after the fused ReLU's mask.
        func gradient(_ index: Int) -> Float {
            if let y, y[index] <= 0 { return 0 }
            return dy[index]
        }

        var shiftSums = [Double](repeating: 0, count: channels)
        var scaleSums = [Double](repeating: 0, count: channels)
        for row in 0..<rows {
            for c in 0..<channels {
                let index = row * channels + c
                let g = Double(gradient(index))
                shiftSums[c] += g
                scaleSums[c] += g * Double((x[index] - mean[c]) * invStd[c])
            }
        }
        let n = Double(rows)
        let dGamma = dScale.floats, dBeta = dShift.floats
        for c in 0..<channels {
            dGamma[c] = Float(scaleSums[c])
            dBeta[c] = Float(shiftSums[c])
        }
        for row in 0..<rows {
            for c in 0..<channels {
                let index = row * channels + c
                let xHat = Double((x[index] - mean[c]) * invStd[c])
                let centred = Double(gradient(index)) - shiftSums[c] / n - xHat * scaleSums[c] / n
                dx[index] = Float(Double(gamma[c] * invStd[c]) * centred)
            }
        }
    }

    /// y = scale * (x - mean) * invStd + shift, then max(0, y) if `fuseReLU`.
    private func normalize(output: Tensor, input: Tensor, scale: Tensor, shift: Tensor,
                           mean: [Float], invStd: [Float], fuseReLU: Bool) {
        let channels = scale.elementCount
        let x = input.floats, y = output.floats, gamma = scale.floats, beta = shift.floats
        for row in 0..<(x.count / channels) {
            for c in 0..<channels {
                let index = row * channels + c
                let value = gamma[c] * (x[index] - mean[c]) * invStd[c] + beta[c]
                y[index] = fuseReLU ? max(0, value) : value
            }
        }
    }

    /// Checks an NHWC input, an output of its shape and `[C]` scale and shift; returns (N*H*W, C).
    private func checkBatchNorm(_ op: String, input: Tensor, output: Tensor, scale: Tensor, shift: Tensor) -> (rows: Int, channels: Int) {
        let (batch, height, width, channels) = nhwc(op, input)
        checkShape(op, output, input.shape)
        checkShape(op, scale, [channels])
        checkShape(op, shift, [channels])
        return (batch * height * width, channels)
    }
}
