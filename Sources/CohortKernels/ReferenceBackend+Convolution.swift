import CohortTensor

/// Convolutions as direct loops over output pixels (no im2col), NHWC
/// activations and OIHW weights (`Note [Layout]`).
///
/// With `ih = oh * stride - padding + kh` (likewise `iw`), and taps outside
/// the input reading zero:
///     output[n, oh, ow, co] = sum over ci, kh, kw of input[n, ih, iw, ci] * weight[co, ci, kh, kw]
/// The innermost loop always runs over a contiguous channel axis so it
/// vectorises; the forward and the data gradient first reorder the weight
/// so that axis is contiguous in it too.
extension ReferenceBackend {
    public func conv2dForward(output: Tensor, input: Tensor, weight: Tensor, geometry: Conv2dGeometry) {
        let input = float32(input), weight = float32(weight)
        let outputStage = float32Output(output)
        defer { outputStage.commit() }
        let output = outputStage.tensor
        checkConvolution("conv2dForward", geometry, input: input, weight: weight, output: output)
        let g = geometry
        let x = input.floats.baseAddress!, y = output.floats.baseAddress!
        // weightHWIO [K, K, Ci, Co]: a tap's weights for one input channel are contiguous over Co.
        let weightHWIO = reorderedWeight(weight, geometry: g, outputChannelsInnermost: true)
        weightHWIO.withUnsafeBufferPointer { weightBuffer in
            let w = weightBuffer.baseAddress!
            for n in 0..<g.batch {
                for oh in 0..<g.outputHeight {
                    for ow in 0..<g.outputWidth {
                        let outputRow = y + ((n * g.outputHeight + oh) * g.outputWidth + ow) * g.outputChannels
                        outputRow.update(repeating: 0, count: g.outputChannels)
                        forEachTap(g, oh: oh, ow: ow) { kh, kw, ih, iw in
                            let inputRow = x + ((n * g.inputHeight + ih) * g.inputWidth + iw) * g.inputChannels
                            let tapWeights = w + (kh * g.kernelSize + kw) * g.inputChannels * g.outputChannels
                            for ci in 0..<g.inputChannels {
                                let value = inputRow[ci]
                                let weightRow = tapWeights + ci * g.outputChannels
                                for co in 0..<g.outputChannels { outputRow[co] += value * weightRow[co] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// dInput[n, ih, iw, ci] = sum over the (oh, ow, kh, kw) that read it of dOutput[n, oh, ow, co] * weight[co, ci, kh, kw].
    public func conv2dBackwardData(dInput: Tensor, dOutput: Tensor, weight: Tensor, geometry: Conv2dGeometry) {
        let dOutput = float32(dOutput), weight = float32(weight)
        let dInputStage = float32Output(dInput)
        defer { dInputStage.commit() }
        let dInput = dInputStage.tensor
        checkConvolution("conv2dBackwardData", geometry, input: dInput, weight: weight, output: dOutput)
        let g = geometry
        let dx = dInput.floats.baseAddress!, dy = dOutput.floats.baseAddress!
        dx.update(repeating: 0, count: dInput.elementCount)
        // weightHWOI [K, K, Co, Ci]: a tap's weights for one output channel are contiguous over Ci.
        let weightHWOI = reorderedWeight(weight, geometry: g, outputChannelsInnermost: false)
        weightHWOI.withUnsafeBufferPointer { weightBuffer in
            let w = weightBuffer.baseAddress!
            for n in 0..<g.batch {
                for oh in 0..<g.outputHeight {
                    for ow in 0..<g.outputWidth {
                        let dOutputRow = dy + ((n * g.outputHeight + oh) * g.outputWidth + ow) * g.outputChannels
                        forEachTap(g, oh: oh, ow: ow) { kh, kw, ih, iw in
                            let dInputRow = dx + ((n * g.inputHeight + ih) * g.inputWidth + iw) * g.inputChannels
                            let tapWeights = w + (kh * g.kernelSize + kw) * g.outputChannels * g.inputChannels
                            for co in 0..<g.outputChannels {
                                let gradient = dOutputRow[co]
                                let weightRow = tapWeights + co * g.inputChannels
                                for ci in 0..<g.inputChannels { dInputRow[ci] += gradient * weightRow[ci] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// dWeight[co, ci, kh, kw] = sum over n, oh, ow of dOutput[n, oh, ow, co] * input[n, ih, iw, ci],
    /// accumulated in Double (the sum grows with the batch).
    public func conv2dBackwardWeight(dWeight: Tensor, input: Tensor, dOutput: Tensor, geometry: Conv2dGeometry) {
        let input = float32(input), dOutput = float32(dOutput)
        let dWeightStage = float32Output(dWeight)
        defer { dWeightStage.commit() }
        let dWeight = dWeightStage.tensor
        checkConvolution("conv2dBackwardWeight", geometry, input: input, weight: dWeight, output: dOutput)
        let g = geometry
        let x = input.floats.baseAddress!, dy = dOutput.floats.baseAddress!, dw = dWeight.floats.baseAddress!
        // One (tap, output channel) at a time, so its Ci sums stay in L1 while the pixels stream past.
        var sums = [Double](repeating: 0, count: g.inputChannels)
        for kh in 0..<g.kernelSize {
            for kw in 0..<g.kernelSize {
                for co in 0..<g.outputChannels {
                    sums.withUnsafeMutableBufferPointer { sum in
                        sum.update(repeating: 0)
                        for n in 0..<g.batch {
                            for oh in 0..<g.outputHeight {
                                let ih = oh * g.stride - g.padding + kh
                                guard ih >= 0 && ih < g.inputHeight else { continue }
                                for ow in 0..<g.outputWidth {
                                    let iw = ow * g.stride - g.padding + kw
                                    guard iw >= 0 && iw < g.inputWidth else { continue }
                                    let pixel = (n * g.outputHeight + oh) * g.outputWidth + ow
                                    let gradient = Double(dy[pixel * g.outputChannels + co])
                                    let inputRow = x + ((n * g.inputHeight + ih) * g.inputWidth + iw) * g.inputChannels
                                    for ci in 0..<g.inputChannels { sum[ci] += gradient * Double(inputRow[ci]) }
                                }
                            }
                        }
                        for ci in 0..<g.inputChannels {
                            dw[((co * g.inputChannels + ci) * g.kernelSize + kh) * g.kernelSize + kw] = Float(sum[ci])
                        }
                    }
                }
            }
        }
    }

    /// Calls `body(kh, kw, ih, iw)` for each kernel tap of output pixel (oh, ow) that lands inside the input.
    @inline(__always)
    private func forEachTap(_ g: Conv2dGeometry, oh: Int, ow: Int, _ body: (Int, Int, Int, Int) -> Void) {
        for kh in 0..<g.kernelSize {
            let ih = oh * g.stride - g.padding + kh
            guard ih >= 0 && ih < g.inputHeight else { continue }
            for kw in 0..<g.kernelSize {
                let iw = ow * g.stride - g.padding + kw
                guard iw >= 0 && iw < g.inputWidth else { continue }
                body(kh, kw, ih, iw)
            }
        }
    }

    /// The OIHW weight reordered to HWIO (`outputChannelsInnermost`) or HWOI.
    private func reorderedWeight(_ weight: Tensor, geometry g: Conv2dGeometry, outputChannelsInnermost: Bool) -> [Float] {
        let w = weight.floats
        let taps = g.kernelSize * g.kernelSize
        var reordered = [Float](repeating: 0, count: w.count)
        for co in 0..<g.outputChannels {
            for ci in 0..<g.inputChannels {
                for tap in 0..<taps {
                    let source = (co * g.inputChannels + ci) * taps + tap
                    let destination = outputChannelsInnermost
                        ? (tap * g.inputChannels + ci) * g.outputChannels + co
                        : (tap * g.outputChannels + co) * g.inputChannels + ci
                    reordered[destination] = w[source]
                }
            }
        }
        return reordered
    }

    private func checkConvolution(_ op: String, _ g: Conv2dGeometry, input: Tensor, weight: Tensor, output: Tensor) {
        checkShape("\(op) (\(g)) input", input, g.inputShape)
        checkShape("\(op) (\(g)) weight", weight, g.weightShape)
        checkShape("\(op) (\(g)) output", output, g.outputShape)
    }
}
