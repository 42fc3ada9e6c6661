import ArgumentParser

@main
struct Cohort: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cohort",
        abstract: "Data-parallel training of ResNet-18 on CIFAR-10, and the experiments that measure it.",
        discussion: """
            Start with `cohort train --dataset synthetic --epochs 1` (no download needed), or
            `cohort train --data <folder with cifar-10-batches-bin>` for the real data set.
            `cohort info` shows which backends this machine can run.
            """,
        subcommands: [Train.self, Launch.self, Evaluate.self, Bench.self, SelfTest.self, Download.self, Report.self, Experiments.self, Info.self, RankExec.self]
    )
}
