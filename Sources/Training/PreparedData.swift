import Datasets

/// The train, validation and test sets of one job, standardized with statistics of the training
/// rows only (so nothing about held-out rows leaks into training).
public struct PreparedData: Sendable {
    public var train: TabularDataset
    public var validation: TabularDataset?
    public var test: TabularDataset?
    public var standardization: Standardization?

    /// Splits `dataset` per the spec (seeded, stratified for classes) unless separate validation or
    /// test sets are given, then fits standardization on the training part and applies it to all.
    public init(spec: JobSpec, dataset: TabularDataset, validationDataset: TabularDataset? = nil, testDataset: TabularDataset? = nil) {
        let split = Splitter.split(dataset, validationFraction: spec.validation.fraction, testFraction: spec.test.fraction,
                                   seed: spec.training.seed)
        var train = dataset.subset(split.train)
        var validation = validationDataset ?? (split.validation.isEmpty ? nil : dataset.subset(split.validation))
        var test = testDataset ?? (split.test.isEmpty ? nil : dataset.subset(split.test))
        if spec.standardize {
            let standardization = Standardization.fit(train, rows: Array(0..<train.rows))
            standardization.apply(to: &train.features, featureCount: train.featureCount)
            if validation != nil { standardization.apply(to: &validation!.features, featureCount: dataset.featureCount) }
            if test != nil { standardization.apply(to: &test!.features, featureCount: dataset.featureCount) }
            self.standardization = standardization
        } else {
            standardization = nil
        }
        self.train = train
        self.validation = validation
        self.test = test
    }
}
