// swift-tools-version:6.0
// Cohort: data-parallel training of ResNet-18 on CIFAR-10, on CPUs and NVIDIA GPUs.
// The targets mirror the architecture (see docs/design.md):
//   CohortTensor      tensors, dtypes, devices, storage and the caching allocator
//   CohortKernels     the Backend protocol and the plain-Swift reference backend (the test oracle)
//   CDNNL/CohortOneDNN  oneDNN reached through dlopen, and the CPU backend built on it
//   CCUDA/CohortCUDA  CUDA, NVRTC, cuBLAS, cuDNN and NCCL reached through dlopen, the GPU backend
//                     and the NCCL communicator (so it depends on CohortDistributed for the protocol)
//   CohortNN          layers (forward/backward pairs), the parameter store, ResNet-18 and a small CNN
//   CohortOptim       SGD/LARS, learning-rate schedules and scaling rules
//   CohortData        CIFAR-10 reader, augmentation, sampler, prefetching loader
//   CohortCheckpoint  safetensors files and training checkpoints
//   CMPI/CohortDistributed  rank discovery, communicators (single process; replica threads; Open MPI through
//                     dlopen), the TCP rendezvous store; CohortMPIProbe checks MPI under mpirun
//   CohortTraining    the training loop, metrics log and progress display
//   CohortExperiments the experiment results model and its writers (JSON, CSV, Markdown, HTML, trace)
//   cohort            the command-line tool
import PackageDescription

let package = Package(
    name: "Cohort",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "cohort", targets: ["cohort"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .target(name: "CohortTensor"),
        .target(name: "CohortKernels", dependencies: ["CohortTensor"]),
        .target(name: "CDNNL", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "CohortOneDNN", dependencies: ["CohortKernels", "CDNNL"]),
        .target(name: "CCUDA", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "CohortCUDA", dependencies: ["CohortKernels", "CCUDA", "CohortDistributed"]),
        .target(name: "CohortNN", dependencies: ["CohortKernels"]),
        .target(name: "CMPI", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "CohortDistributed", dependencies: ["CohortKernels", "CohortNN", "CMPI"]),
        .executableTarget(name: "CohortMPIProbe", dependencies: ["CohortDistributed"]),
        .target(name: "CohortOptim", dependencies: ["CohortNN"]),
        .target(name: "CohortData", dependencies: ["CohortTensor"]),
        .target(name: "CohortCheckpoint", dependencies: ["CohortNN", "CohortOptim"]),
        .target(name: "CohortTraining", dependencies: [
            "CohortNN", "CohortOptim", "CohortData", "CohortCheckpoint", "CohortOneDNN", "CohortCUDA", "CohortDistributed",
        ]),
        .target(name: "CohortExperiments"),
        .target(name: "CohortTestSupport", path: "Sources/CohortTestSupport"),
        .executableTarget(name: "cohort", dependencies: [
            "CohortTraining", "CohortCUDA", "CohortExperiments",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "CohortTensorTests", dependencies: ["CohortTensor"]),
        .testTarget(name: "CohortKernelsTests", dependencies: ["CohortKernels"]),
        .testTarget(name: "CohortOneDNNTests", dependencies: ["CohortOneDNN"]),
        .testTarget(name: "CohortCUDATests", dependencies: ["CohortCUDA", "CohortKernels", "CCUDA"],
                    exclude: ["Emulation"]),  // C++ the kernel emulation test compiles itself
        .testTarget(name: "CohortNNTests", dependencies: ["CohortNN", "CohortOneDNN"]),
        .testTarget(name: "CohortOptimTests", dependencies: ["CohortOptim"]),
        .testTarget(name: "CohortDataTests", dependencies: ["CohortData"]),
        .testTarget(name: "CohortCheckpointTests", dependencies: ["CohortCheckpoint", "CohortNN", "CohortOptim"]),
        .testTarget(name: "CohortTrainingTests", dependencies: ["CohortTestSupport", 
            "CohortTraining", "CohortNN", "CohortOptim", "CohortData", "CohortCheckpoint", "CohortOneDNN", "CohortDistributed",
        ]),
        .testTarget(name: "CohortDistributedTests", dependencies: ["CohortTestSupport", 
            "CohortDistributed", "CohortTensor", "CohortNN", "CohortOptim", "CohortKernels", "CohortMPIProbe",
        ]),
        .testTarget(name: "CohortExperimentsTests", dependencies: ["CohortExperiments"]),
        .testTarget(name: "CohortCLITests", dependencies: ["CohortTestSupport", "cohort", "CohortExperiments"]),
    ]
)
